"""Routes of the metrics settings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.metrics.org_settings.domain import OrgSettings
from services.metrics.org_settings.schemas import MetricsSettingsIn, MetricsSettingsOut
from services.metrics.org_settings.service import OrgSettingsService
from services.metrics.web import Admin, Manager, Modules

router = APIRouter(prefix="/v1", tags=["analytics"])


def _settings_out(service: OrgSettingsService, settings: OrgSettings) -> dict[str, Any]:
    rates = settings.rates
    return {
        "cpc": str(rates.cpc),
        "cpm": str(rates.cpm),
        "currency": rates.currency,
        "attribution_window_days": service.window_days(settings),
        "emv_formula": rates.formula(),
        "time_zone": settings.time_zone,
    }


@router.get(
    "/metrics/settings",
    response_model=MetricsSettingsOut,
    summary="CPC, CPM, attribution window and time zone of the organisation",
)
async def get_metrics_settings(principal: Manager, modules: Modules) -> dict[str, Any]:
    service = modules.org_settings
    return _settings_out(service, await service.of(principal.org))


@router.put(
    "/metrics/settings",
    response_model=MetricsSettingsOut,
    summary="Set CPC and CPM for earned media value",
)
async def put_metrics_settings(body: MetricsSettingsIn, principal: Admin, modules: Modules) -> dict[str, Any]:
    """The attribution window and the time zone come from the organisation settings (content
    service)."""
    service = modules.org_settings
    return _settings_out(service, await service.set_rates(principal.org, body.cpc, body.cpm, body.currency))
