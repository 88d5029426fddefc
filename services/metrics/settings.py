"""Settings of the metrics service (CHORUS_* environment variables, see shared/settings.py)."""

from __future__ import annotations

from dataclasses import replace

from pydantic import Field, model_validator

from shared.events.topics import CLICKS, CONVERSIONS, SHARES, Topic
from shared.settings import ChorusSettings

DEV_SURVEY_SECRET = "chorus-dev-survey-respondent-secret-change-me"  # noqa: S105 - dev only


class MetricsSettings(ChorusSettings):
    # Used until the organisation's SettingsUpdated event says otherwise.
    default_attribution_window_days: int = 30
    # Days without a share after which an enrolled advocate no longer counts as active.
    active_window_days: int = 30
    goal_snapshot_every_s: float = 3600.0
    # Outbound webhooks: how often due deliveries are sent, the first retry's wait (it doubles),
    # and how long one attempt may take in all.
    webhook_dispatch_every_s: float = 1.0
    webhook_retry_base_s: float = 5.0
    webhook_timeout_s: float = Field(10.0, gt=0)
    # Employee survey respondents are kept as an HMAC under this secret: without it, trying
    # known employee ids cannot tell who answered (deploy/ reads it from a Secret).
    survey_respondent_secret: str = DEV_SURVEY_SECRET
    # An employee survey's results are withheld until this many have answered.
    survey_min_responses: int = Field(5, ge=1)
    # How long a conversion naming a click id that is not indexed yet waits for it: a form sent
    # right after the redirect can arrive before its click has gone through the spool, Kafka and
    # the click index. Below CHORUS_MONGO_REQUEST_TIMEOUT_S, the request's whole deadline.
    conversion_click_wait_s: float = Field(2.5, ge=0)
    # The topics the projections are built from. Only tests change them, to replay and rebuild
    # from topics of their own on a shared broker.
    shares_topic: str = SHARES.name
    clicks_topic: str = CLICKS.name
    conversions_topic: str = CONVERSIONS.name

    @model_validator(mode="after")
    def _click_wait_within_the_request_deadline(self) -> MetricsSettings:
        if self.conversion_click_wait_s >= self.mongo_request_timeout_s:
            raise ValueError(
                "CHORUS_CONVERSION_CLICK_WAIT_S must be below CHORUS_MONGO_REQUEST_TIMEOUT_S: a conversion"
                " still has to be stored after waiting for its click"
            )
        return self

    @model_validator(mode="after")
    def _refuse_the_dev_survey_secret_in_prod(self) -> MetricsSettings:
        if self.environment == "prod" and (
            self.survey_respondent_secret == DEV_SURVEY_SECRET or len(self.survey_respondent_secret) < 32
        ):
            raise ValueError(
                "CHORUS_SURVEY_RESPONDENT_SECRET must be set to a secret of 32 characters or more"
            )
        return self

    @property
    def outboxed_topics(self) -> tuple[str, ...]:
        """Projected topics whose events leave through an outbox relay (shared/outbox.py), at
        least once: the same event may come twice at two offsets (two replicas' relays, a resend),
        so their projection dedupes by event id as well as by offset."""
        return (self.shares_topic, self.conversions_topic)

    def projected_topics(self) -> tuple[Topic, ...]:
        """Shares, clicks and conversions: the topics `project` folds, live and in a rebuild."""
        return tuple(
            replace(topic, name=name)
            for topic, name in (
                (SHARES, self.shares_topic),
                (CLICKS, self.clicks_topic),
                (CONVERSIONS, self.conversions_topic),
            )
        )
