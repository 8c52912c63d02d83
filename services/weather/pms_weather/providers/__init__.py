"""Weather providers behind one small interface (`base.WeatherProvider`): the offline clear-sky model
(the default) and Open-Meteo's forecast API, general or its JMA endpoint."""
