"""The sharing service's settings (CHORUS_* variables, on top of the shared ones)."""

from __future__ import annotations

from pydantic import Field, model_validator

from shared.events.clicks import CLICK_ID_PARAM
from shared.settings import ChorusSettings

# The CloudEvents `source` of every event sharing emits.
SOURCE = "/chorus/sharing"
SERVICE = "sharing"  # its name: its database is chorus_sharing
DEV_VISITOR_SECRET = "chorus-dev-visitor-hash-secret-change-me"  # noqa: S105 - dev only


class SharingSettings(ChorusSettings):
    # The local durable spool of click events waiting for Kafka (sqlite3, WAL). Give every replica
    # its own file on a persistent volume; a restarted replica drains what its predecessor left.
    click_spool_path: str = "/tmp/chorus-sharing/click-spool.sqlite3"  # noqa: S108 - local default
    # How long after a commit (an fsync) to the spool the clicks buffered since are committed.
    click_flush_interval_s: float = Field(0.01, gt=0)
    # Rows per drain step. Each step is a few round trips (the spool, the seen visitors, Kafka's
    # acknowledgement), but since the producer stopped lingering the spans are most of the cost:
    # about 2,200 clicks/s at 20 and 2,350 at 200 with every trace recorded, 3,600 at 20 with one
    # in ten (bench/redirect/drain.py, bench/redirect/README.md). The producer lets requests in
    # every 25 sends (SENDS_PER_TURN) whatever the step.
    click_drain_batch: int = Field(20, ge=1, le=5000)
    # Drain the spool to Kafka from a relay process beside the service instead of a task in it.
    click_relay_process: bool = False
    # The secret the daily visitor-hash salt and the advocate cookie are derived from.
    visitor_hash_secret: str = DEV_VISITOR_SECRET
    # A header set by the trusted edge (CDN / ingress) with the visitor's country; None = never.
    country_header: str | None = "cf-ipcountry"
    # A header set by the trusted edge with the visitor's IP (first hop); None = the socket peer.
    client_ip_header: str | None = None
    # Query parameters that ask us not to track the visitor (no visitor hash is computed).
    no_track_params: tuple[str, ...] = ("notrack", "no_track", "dnt")
    click_id_param: str = CLICK_ID_PARAM
    # Code -> target mapping cache. A link whose share is cancelled or whose advocate is erased
    # leaves every replica's cache on its next state refresh (redirect/service.py); entries are
    # read again after this long all the same.
    redirect_cache_size: int = Field(200_000, ge=100)
    redirect_cache_ttl_s: float = Field(600.0, gt=0)
    # How often the in-memory view of archived content and org settings is refreshed.
    redirect_state_refresh_s: float = Field(2.0, gt=0)
    scheduled_share_interval_s: float = Field(5.0, gt=0)
    # How often the directory finishes provisioning writes a stopped process left half done.
    directory_sync_interval_s: float = Field(30.0, gt=0)
    advocate_cookie_name: str = "chorus_advocate"
    max_schedule_days: int = 90

    @model_validator(mode="after")
    def _refuse_the_dev_visitor_secret_in_prod(self) -> SharingSettings:
        # Anyone who knows the secret can recompute a visitor's hash from an IP address: in
        # production it must be the deployment's own (deploy/ reads it from a Secret).
        if self.environment == "prod" and (
            self.visitor_hash_secret == DEV_VISITOR_SECRET or len(self.visitor_hash_secret) < 32
        ):
            raise ValueError("CHORUS_VISITOR_HASH_SECRET must be set to a secret of 32 characters or more")
        return self
