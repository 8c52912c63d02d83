"""A plant's figures, read from the store through the plant's binding intervals and joined with the
registry and the PV model; shared by the API (pages, series) and alerts (rule conditions).

    bound_reads  the store's queries for plants instead of gateways (binding windows)
    expected     a plant's expected yield: its PV parameters and calibration, the stored weather
                 (clear sky where none), sold energy per period, the clear-day calibration
"""
