"""The console's words in Japanese (the default) and English: one table, looked up by key."""

from __future__ import annotations

LANGUAGES = ("ja", "en")

MESSAGES: dict[str, tuple[str, str]] = {  # key: (日本語, English)
    "title": ("発電量監視コンソール", "Power Metering Console"),
    "login": ("ログイン", "Log in"),
    "logout": ("ログアウト", "Log out"),
    "username": ("ユーザー名", "Username"),
    "password": ("パスワード", "Password"),
    "login_failed": ("ユーザー名またはパスワードが違います", "Wrong username or password"),
    "login_locked": ("ログインの失敗が続いたため、{minutes} 分後に再度お試しください",
                     "Too many failed logins: try again in {minutes} min"),
    "home": ("ホーム", "Home"),
    "sales": ("売電状況", "Sales status"),
    "list_view": ("一覧表示", "List"),
    "graph_view": ("グラフ表示", "Graph"),
    "management_status": ("管理状況", "Management status"),
    "gateways_normal": ("正常", "Normal"),
    "gateways_abnormal": ("異常", "Abnormal"),
    "gateways_total": ("合計", "Total"),
    "notices": ("メンテナンス・停電情報", "Maintenance and outage notices"),
    "no_notices": ("お知らせはありません", "No notices"),
    "events": ("イベントログ", "Event log"),
    "no_events": ("イベントはありません", "No events"),
    "total_sold": ("総売電量", "Total sold energy"),
    "today_sold": ("本日の売電量", "Sold today"),
    "plants": ("発電所数", "Plants"),
    "service_code": ("サービスコード", "Service code"),
    "customer_id": ("顧客ID", "Customer ID"),
    "name": ("発電所名", "Plant name"),
    "address": ("住所", "Address"),
    "phone": ("電話番号", "Phone"),
    "current_sold": ("現在の売電電力", "Current sold power"),
    "not_measured": ("未計測", "Not measured"),
    "status": ("状態", "Status"),
    "updated": ("更新", "Updated"),
    "capacity": ("設備容量", "Capacity"),
    "tariff": ("売電単価", "Selling tariff"),
    "billing_start": ("課金開始日", "Billing start date"),
    "energy_hour": ("時間別売電量", "Energy by hour"),
    "energy_day": ("日別売電量", "Energy by day"),
    "energy_month": ("月別売電量", "Energy by month"),
    "peaks": ("日別ピーク電力", "Daily peak power"),
    "realtime": ("リアルタイム電力", "Realtime power"),
    "weather": ("気象（日射量・気温）", "Weather (irradiance, temperature)"),
    "price": ("売電金額", "Selling price"),
    "csv": ("CSVダウンロード", "Download CSV"),
    "date": ("日付", "Date"),
    "show": ("表示", "Show"),
    "sold_kwh": ("売電量 (kWh)", "Sold (kWh)"),
    "bought_kwh": ("買電量 (kWh)", "Bought (kWh)"),
    "sold_w": ("売電電力 (W)", "Sold power (W)"),
    "amount_yen": ("金額 (円)", "Amount (yen)"),
    "ghi": ("日射量 (W/m²)", "Irradiance (W/m²)"),
    "temperature": ("気温 (°C)", "Temperature (°C)"),
    "opened_at": ("発生日時", "Opened"),
    "recovered_at": ("復旧日時", "Recovered"),
    "kind": ("種別", "Kind"),
    "message": ("内容", "Message"),
    "state": ("状態", "State"),
    "kind_gateway_offline": ("異常（ゲートウェイ切断）", "Abnormal (gateway offline)"),
    "kind_gateway_recovered": ("復旧", "Recovered"),
    "kind_billing_start_decided": ("課金開始日確定", "Billing start decided"),
    "kind_register_anomaly": ("積算値異常", "Register anomaly"),
    "kind_meter_clock_skew": ("メーター時刻ずれ", "Meter clock skew"),
    "kind_meter_scale_invalid": ("メーター係数異常", "Meter scale invalid"),
    "kind_meter_history_conflict": ("メーター履歴不一致", "Meter history conflict"),
    "state_open": ("発生中", "Open"),
    "state_recovered": ("復旧済み", "Recovered"),
    "state_info": ("情報", "Info"),
    "notice_maintenance": ("メンテナンス", "Maintenance"),
    "notice_outage": ("停電", "Outage"),
    "notice_info": ("お知らせ", "Info"),
    "status_normal": ("正常", "Normal"),
    "status_not_measured": ("未計測", "Not measured"),
    "status_offline": ("切断", "Offline"),
    "status_no_gateway": ("ゲートウェイ未設定", "No gateway"),
    "period": ("期間", "Period"),
    "back": ("一覧へ戻る", "Back to the list"),
    "no_data": ("データがありません", "No data"),
    "language": ("English", "日本語"),
}


def translate(key: str, language: str) -> str:
    pair = MESSAGES.get(key)
    if pair is None:
        return key
    return pair[1] if language == "en" else pair[0]


def catalog(language: str) -> dict[str, str]:
    """All words of one language, for the pages' scripts."""
    return {key: translate(key, language) for key in MESSAGES}
