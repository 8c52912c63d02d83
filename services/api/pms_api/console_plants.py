"""The console's plant management (admins and operators, within their customers): register and edit a
plant with its PV parameters, retire it, its price history with time-of-use bands, the CSV import
(upload → preview with the bad rows marked → confirm → result), the export and the settlement sheet.

Forms are checked by the rules the CSV import applies (pms_api.plant_csv), so a form and a file say the
same thing in the operator's language; the steps are the API's (plant_actions, api_plant_import).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from pms_api.api_plant_import import confirm_import, preview_import
from pms_api.api_tariffs import tariff_rows
from pms_api.plant_actions import INPUT_REFUSED, add_tariff, may_change_plants, retire
from pms_api.plant_csv import COLUMNS, ReadEncoding, check_plant_form
from pms_api.problems import ProblemError
from pms_common import timeutil
from pms_registry import Registry, RegistryError
from pms_registry.plant_import import ImportNotFound
from pms_registry.pv import PV_FIELDS
from pms_registry.records import Plant, User

FIELDS = [column.name for column in COLUMNS if column.name != "service_code"]
PLANTS_LISTED = 200
_BAND = re.compile(r"^\s*(\d{1,2}:\d{2})\s*[-~〜]\s*(\d{1,2}:\d{2})\s+([0-9.]+)\s*$")


def tou_bands(text: str) -> list[dict[str, Any]] | None:
    """Bands from the form's lines "HH:MM-HH:MM price"; None when a line does not read so (the registry
    then checks the times and prices and names the band at fault)."""
    bands = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _BAND.match(line.replace("：", ":"))
        if match is None:
            return None
        start, until, price = match.groups()
        bands.append({"from": start.zfill(5), "until": until.zfill(5), "yen_per_kwh": float(price)})
    return bands


def add_plant_pages(console: Blueprint, registry: Registry, *, current_user: Callable[[], User | None],
                    language: Callable[[], str], login_required: Callable[[Any], Any],
                    translate: Callable[[str, str], str]) -> None:
    """Register the plant management pages on the console blueprint (its login, CSRF check and words)."""

    def manager() -> User:
        """Admins and operators; a viewer gets the 404 of a page that is not there."""
        user = current_user()
        if user is None or not may_change_plants(user):
            raise ProblemError(404, "no such page")
        return user

    def actor(user: User) -> str:
        return f"user:{user.username}"

    def own_plant(user: User, code: str) -> Plant:
        plant = registry.get_plant(code, user.customer_id)
        if plant is None:
            raise ProblemError(404, f"no plant {code}")
        return plant

    def customers_of(user: User) -> list[Any]:
        return [c for c in registry.list_customers() if user.customer_id in (None, c.customer_id)]

    def admin_page(user: User, *, problems: list[str] | None = None, form: dict[str, str] | None = None,
                   status: int = 200) -> tuple[str, int]:
        query = request.args.get("q", "").strip()
        plants = registry.list_plants(user.customer_id)
        if query:
            plants = [p for p in plants if query in p.service_code or query in p.name or query in p.address]
        retired = [p for p in registry.list_plants(user.customer_id, include_retired=True) if p.retired_at]
        this_month = timeutil.now_jst().date().replace(day=1)
        last_month = (this_month - timedelta(days=1)).strftime("%Y-%m")
        return render_template("plants_admin.html", plants=plants[:PLANTS_LISTED], total=len(plants), query=query,
                               retired=retired, customers=customers_of(user), problems=problems or [],
                               form=form or {}, last_month=last_month), status

    def form_cells() -> dict[str, str]:
        return {name: request.form.get(name, "").strip() for name in FIELDS}

    def checked(user: User, cells: dict[str, str]) -> tuple[dict[str, Any] | None, list[str]]:
        scope_plants = {p.service_code: p for p in registry.list_plants(user.customer_id, include_retired=True)}
        accepted, problems = check_plant_form(cells, customers={c.customer_id for c in registry.list_customers()},
                                              plants=scope_plants, scope=user.customer_id)
        if problems:
            INPUT_REFUSED.labels("form").inc()
        return accepted, [problem.text(language()) for problem in problems]

    @console.get("/manage/plants")
    @login_required
    def plants_admin() -> tuple[str, int]:
        return admin_page(manager())

    @console.post("/manage/plants")
    @login_required
    def create_plant_from_form() -> tuple[str, int] | WerkzeugResponse:
        user = manager()
        cells = form_cells()
        accepted, problems = checked(user, cells)
        if accepted is None:
            return admin_page(user, problems=problems, form=cells, status=422)
        code = registry.create_plant(created_at=timeutil.now_jst(), tariff_yen_per_kwh=accepted["tariff_yen_per_kwh"],
                                     **accepted["plant"])
        registry.set_plant_pv(code, **accepted["pv"])
        flash(translate("plant_created", language()).format(code=code))
        return redirect(url_for("console.plant", service_code=code))

    def edit_page(user: User, plant: Plant, cells: dict[str, str], problems: list[str],
                  status: int = 200) -> tuple[str, int]:
        return render_template("plant_form.html", plant=plant, form=cells, problems=problems,
                               customers=customers_of(user)), status

    @console.get("/plants/<service_code>/edit")
    @login_required
    def edit_plant(service_code: str) -> tuple[str, int]:
        user = manager()
        plant = own_plant(user, service_code)
        pv = registry.plant_pv(service_code)
        values: dict[str, Any] = {**{name: getattr(plant, name, None) for name in FIELDS if hasattr(plant, name)},
                                  **{name: getattr(pv, name) for name in PV_FIELDS}}
        cells = {name: "" if values.get(name) is None else f"{values[name]:g}" if isinstance(values[name], float)
                 else str(values[name]) for name in FIELDS}
        return edit_page(user, plant, cells, [])

    @console.post("/plants/<service_code>/edit")
    @login_required
    def save_plant(service_code: str) -> tuple[str, int] | WerkzeugResponse:
        user = manager()
        plant = own_plant(user, service_code)
        cells = {**form_cells(), "service_code": service_code}
        accepted, problems = checked(user, cells)
        if accepted is None:
            return edit_page(user, plant, cells, problems, 422)
        try:
            registry.update_plant(service_code, **accepted["plant"])
            if accepted["set_tariff"]:
                registry.update_plant(service_code, tariff_yen_per_kwh=accepted["tariff_yen_per_kwh"])
        except RegistryError as exc:
            return edit_page(user, plant, cells, [str(exc)], 422)
        registry.set_plant_pv(service_code, **accepted["pv"])
        flash(translate("plant_saved", language()).format(code=service_code))
        return redirect(url_for("console.plant", service_code=service_code))

    @console.post("/plants/<service_code>/retire")
    @login_required
    def retire_plant(service_code: str) -> WerkzeugResponse:
        user = manager()
        retire(registry, own_plant(user, service_code), actor(user))
        flash(translate("plant_retired", language()).format(code=service_code))
        return redirect(url_for("console.plants_admin"))

    def tariff_page(plant: Plant, problems: list[str], status: int = 200) -> tuple[str, int]:
        today = timeutil.now_jst().date()
        return render_template("plant_tariffs.html", plant=plant, rows=tariff_rows(
            registry.list_tariffs(plant.service_code), today), problems=problems, form=request.form,
            first_of_next_month=(today.replace(day=28) + timedelta(days=4)).replace(day=1)), status

    @console.get("/plants/<service_code>/tariffs")
    @login_required
    def plant_tariffs(service_code: str) -> tuple[str, int]:
        return tariff_page(own_plant(manager(), service_code), [])

    @console.post("/plants/<service_code>/tariffs")
    @login_required
    def add_plant_tariff(service_code: str) -> tuple[str, int] | WerkzeugResponse:
        user = manager()
        plant = own_plant(user, service_code)
        lang = language()
        problems = []
        try:
            day = date.fromisoformat(request.form.get("effective_from", "").strip())
        except ValueError:
            problems.append(f"{translate('effective_from', lang)}: {translate('form_date', lang)}")
        else:
            if day <= timeutil.now_jst().date():  # said in the user's language; the registry says it in English
                problems.append(f"{translate('effective_from', lang)}: "
                                f"{translate('tariff_not_future', lang).format(day=day.isoformat())}")
        try:
            yen = float(request.form.get("yen_per_kwh", "").strip())
        except ValueError:
            problems.append(f"{translate('starting_tariff', lang)}: {translate('csv_number', lang)}")
        bands = tou_bands(request.form.get("bands", ""))
        if bands is None:
            problems.append(f"{translate('tou_bands', lang)}: {translate('form_bands', lang)}")
        if problems:
            INPUT_REFUSED.labels("tariff").inc()
            return tariff_page(plant, problems, 422)
        try:
            add_tariff(registry, service_code, effective_from=day, yen_per_kwh=yen, bands=bands, actor=actor(user))
        except RegistryError as exc:
            return tariff_page(plant, [str(exc)], 422)
        flash(translate("tariff_added", lang).format(day=day.isoformat(), yen=f"{yen:g}"))
        return redirect(url_for("console.plant_tariffs", service_code=service_code))

    @console.post("/plants/<service_code>/tariffs/<int:tariff_id>/delete")
    @login_required
    def delete_plant_tariff(service_code: str, tariff_id: int) -> tuple[str, int] | WerkzeugResponse:
        user = manager()
        plant = own_plant(user, service_code)
        try:
            registry.delete_tariff(service_code, tariff_id, timeutil.now_jst().date())
        except RegistryError as exc:
            return tariff_page(plant, [str(exc)], 409)
        flash(translate("tariff_deleted", language()))
        return redirect(url_for("console.plant_tariffs", service_code=service_code))

    @console.post("/manage/plants/import")
    @login_required
    def import_plants() -> tuple[str, int]:
        """Upload → preview: nothing is written; the valid rows wait under a token for the confirm button."""
        user = manager()
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            return admin_page(user, problems=[translate("csv_no_file", language())], status=422)
        encoding: ReadEncoding = request.form.get("encoding") if request.form.get("encoding") in (
            "utf-8", "shift_jis") else "auto"  # type: ignore[assignment]
        preview, token, expires = preview_import(registry, upload.stream.read(), encoding, scope=user.customer_id,
                                                 actor=actor(user))
        return render_template("plant_import.html", preview=preview, token=token, expires=expires,
                               lang=language()), 200 if not preview.problems else 422

    @console.post("/manage/plants/import/<token>")
    @login_required
    def confirm_plant_import(token: str) -> tuple[str, int] | WerkzeugResponse:
        user = manager()
        lang = language()
        try:
            done = confirm_import(registry, token, actor(user))
        except RegistryError as exc:  # ImportNotFound included: nothing was written
            status = 404 if isinstance(exc, ImportNotFound) else 409
            return admin_page(user, problems=[translate("import_failed", lang).format(reason=exc)], status=status)
        flash(translate("import_done", lang).format(created=sum(d.created for d in done),
                                                     updated=sum(not d.created for d in done)))
        return redirect(url_for("console.plants_admin"))

    @console.get("/manage/settlement")
    @login_required
    def settlement_sheet() -> WerkzeugResponse:
        """The settlement form's target: the API's sheet, which the login session may read."""
        user = current_user()
        assert user is not None
        customer = request.args.get("customer_id", "")
        if user.customer_id not in (None, customer):
            raise ProblemError(404, f"no customer {customer}")
        query = {name: request.args[name] for name in ("month", "encoding", "headers") if request.args.get(name)}
        return redirect(f"{url_for('api_v1.settlement', customer_id=customer)}?{urlencode(query)}")
