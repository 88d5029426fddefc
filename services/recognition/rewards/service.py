"""Rewards: the catalogue, redemptions and their fulfilment through the shared webhook engine.

A redemption is written first, `placing` and shown to no one; it then reserves stock and budget
and spends the points (each a single conditional update that remembers the redemption, so a retry
takes nothing twice; undone on refusal), and is shown with its event in one write. A move's event
is queued in the move's own write; what the move implies elsewhere (a refund, the fulfilment
webhook) is done right after. `relay` finishes either should a crash, or a MongoDB outage past
the request's deadline, come between.

One reason this service is longer than its domain: a redemption's steps span documents (the
reward, the account, the ledger, the redemption), and several tries of one may run at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from services.recognition.points.service import PointsService
from services.recognition.rewards import domain
from services.recognition.rewards.domain import FULFILMENT, Offer, Redemption, RedemptionStatus, Reward
from services.recognition.rewards.store import RewardStore
from services.recognition.settings import RecognitionSettings
from shared.clock import Clock, utc_now
from shared.errors import Conflict, found
from shared.ids import id_for_request
from shared.mongo import writes_over_after
from shared.outbox import Outbox, pending
from shared.pagination import decode_time_id, encode_time_id
from shared.webhooks import canonical_body
from shared.webhooks.engine import Delivery, DeliveryStore, Target, WebhookEngine

log = logging.getLogger(__name__)


@dataclass(eq=False)
class RewardService:
    store: RewardStore
    outbox: Outbox
    points: PointsService
    settings: RecognitionSettings
    clock: Clock = utc_now

    def __post_init__(self) -> None:
        self.webhooks = WebhookEngine(
            DeliveryStore(self.store.db),
            self._target,
            content_type="application/json",
            retry_base_s=self.settings.webhook_backoff_base_s,
            max_attempts=self.settings.webhook_max_attempts,
            timeout_s=self.settings.webhook_timeout_s,
            # Plain http to a local receiver is for development only.
            allow_insecure_loopback=self.settings.environment != "prod",
        )

    # --- the catalogue ---------------------------------------------------------------------------

    async def create_reward(self, org: str, offer: Offer, idempotency_key: str | None) -> Reward:
        """A reward of the catalogue; with an Idempotency-Key, the one its first try made."""
        now, made_at = self.clock(), partial(self.store.reward_made_at, org)
        reward_id = await id_for_request("rwd_", idempotency_key, (org,), made_at, now)
        return await self.store.insert_reward(org, domain.new_reward(reward_id, offer, now))

    async def reward(self, org: str, reward_id: str) -> Reward:
        return found(await self.store.reward(org, reward_id), f"no reward {reward_id}")

    async def rewards(self, org: str, cursor: str | None, limit: int) -> tuple[list[Reward], str | None]:
        rewards = await self.store.rewards(org, after=decode_time_id(cursor), limit=limit)
        last = rewards[-1] if len(rewards) == limit else None
        return rewards, None if last is None else encode_time_id(last.created_at, last.id)

    # --- redemptions -----------------------------------------------------------------------------

    async def request_redemption(
        self, org: str, advocate_id: str, reward_id: str, idempotency_key: str | None
    ) -> Redemption:
        """Redeem a reward. With an Idempotency-Key the redemption's id comes from it, so a retry
        finishes (or answers) the first try's redemption instead of making another."""
        reward = await self.reward(org, reward_id)
        domain.check_offered(reward)
        now, made_at = self.clock(), partial(self.store.redemption_made_at, org)
        rid = await id_for_request("rdm_", idempotency_key, (org, advocate_id, reward_id), made_at, now)
        begun = await self.store.begin_redemption(domain.placing(rid, org, advocate_id, reward, now))
        if not begun.placing:  # a retry of a redemption placed before
            return begun
        return await self._place(begun, reward)

    async def _place(self, redemption: Redemption, reward: Reward) -> Redemption:
        """Stock and budget first, then points, then the redemption is shown with its event. Each
        step is done once whatever the retries; on refusal the redemption is dropped and what was
        taken is given back. Several tries of one redemption may run at once (a retry and the
        relay, two relays), so a try whose redemption another dropped gives back what it took."""
        org, rid = redemption.org, redemption.id
        if not await self.store.reserve(org, reward, rid):
            return await self._refuse(redemption, reward, domain.refusal(await self.reward(org, reward.id)))
        if not await self.points.spend(
            org, redemption.advocate_id, rid, redemption.cost, redemption.reward_name
        ):
            account = await self.points.account(org, redemption.advocate_id)
            refusal = domain.InsufficientPoints(
                f"{reward.name} costs {reward.cost} points; your balance is {account.balance}"
            )
            return await self._refuse(redemption, reward, refusal)
        placed = domain.placed(redemption, self.clock())
        event = domain.redeemed(placed, RedemptionStatus.REQUESTED)
        if await self.store.place(placed, [pending(event)]):
            self.outbox.nudge()
            await self.store.settle_reservation(org, reward.id, rid)
            return placed
        shown = await self.store.redemption(org, rid)
        if shown is not None:  # another try placed it meanwhile
            await self.store.settle_reservation(org, reward.id, rid)
            return shown
        # Another try was refused and dropped it meanwhile: the points and unit this one took
        # (each once per redemption) go back, once.
        await self.points.refund(org, redemption.advocate_id, rid, redemption.cost, redemption.reward_name)
        await self.store.release_reservation(org, reward, redemption)
        raise Conflict(f"this redemption of {reward.name} was refused meanwhile")

    async def _refuse(self, redemption: Redemption, reward: Reward, refusal: Conflict) -> Redemption:
        """Drop a refused redemption and give back its unit; the one another try placed
        meanwhile, if it did."""
        org, rid = redemption.org, redemption.id
        if not await self.store.drop_placing(org, rid, self.clock()):
            shown = await self.store.redemption(org, rid)
            if shown is not None:
                return shown
        # Dropped, by this try or another: no try can place it now, so no unit stays taken for it.
        await self.store.release_reservation(org, reward, redemption)
        raise refusal

    async def redemption(self, org: str, redemption_id: str) -> Redemption:
        return found(await self.store.redemption(org, redemption_id), f"no redemption {redemption_id}")

    async def move_redemption(
        self, org: str, redemption_id: str, target: RedemptionStatus, by: str, note: str | None = None
    ) -> Redemption:
        current = await self.redemption(org, redemption_id)
        move = domain.move(current, target, note)
        event = domain.redeemed(current, target)
        moved = await self.store.move(org, redemption_id, move, by, self.clock(), [pending(event)])
        if moved is None:  # another request moved it since the read
            raise Conflict(f"a {current.status} redemption cannot become {target}")
        self.outbox.nudge()
        if moved.needs_relay:
            await self._follow_up(moved)
        return moved

    async def _follow_up(self, redemption: Redemption) -> None:
        """Finish what a status change implies in other documents: the refund of a rejected
        redemption, the fulfilment webhook of an approved one. Each step is idempotent."""
        org, rid = redemption.org, redemption.id
        if redemption.refund_pending:
            await self.points.refund(
                org, redemption.advocate_id, rid, redemption.cost, redemption.reward_name
            )
            reward = await self.store.reward(org, redemption.reward_id)
            if reward is not None:
                await self.store.return_stock(org, reward, redemption)
            await self.store.clear_refund_pending(org, rid)
        if redemption.webhook_pending:
            await self._enqueue_webhook(redemption)
            await self.store.clear_webhook_pending(org, rid)
        await self.store.finish_relay(org, rid)

    async def redemptions(
        self, org: str, advocate_id: str | None, status: str | None, cursor: str | None, limit: int
    ) -> tuple[list[Redemption], str | None]:
        found = await self.store.redemptions(
            org, advocate_id, status, after=decode_time_id(cursor), limit=limit
        )
        last = found[-1] if len(found) == limit else None
        return found, None if last is None else encode_time_id(last.created_at, last.id)

    async def relay(self) -> int:
        """Finish the redemptions and moves a crash left half done. Safe to run anywhere.

        A placing redemption is finished only once its request can no longer write
        (`writes_over_after`), so that the relay never races the request it finishes."""
        now = self.clock()
        abandoned = now - writes_over_after(self.settings)
        done = 0
        for redemption in await self.store.stale_redemptions(
            now - timedelta(seconds=self.settings.relay_grace_s)
        ):
            if not redemption.placing:
                await self._follow_up(redemption)
            elif redemption.created_at < abandoned:
                await self._finish_placing(redemption)
            else:
                continue
            done += 1
        return done

    async def _finish_placing(self, redemption: Redemption) -> None:
        """Place a redemption its request left placing; it was accepted, so it goes on unless
        refused (as the request would have been)."""
        reward = await self.store.reward(redemption.org, redemption.reward_id)
        if reward is None:  # nothing could have been taken from a reward that is not there
            await self.store.drop_placing(redemption.org, redemption.id, self.clock())
            return
        try:
            await self._place(redemption, reward)
        except Conflict as refused:
            log.info("redemption %s left placing was refused: %s", redemption.id, refused.detail)

    async def erase(self, org: str, advocate_id: str, token: str) -> None:
        await self.store.erase(org, advocate_id, token)
        await self.webhooks.forget(org, advocate_id)  # fulfilment requests name the advocate

    # --- the fulfilment webhook ------------------------------------------------------------------

    async def set_webhook(self, org: str, url: str, secret: str) -> None:
        await self.store.set_webhook(org, await self.webhooks.checked_url(url), secret, self.clock())

    async def webhook(self, org: str) -> Target | None:
        return await self.store.webhook(org)

    async def _target(self, org: str, _target: str) -> Target | None:
        return await self.store.webhook(org)

    async def _enqueue_webhook(self, redemption: Redemption) -> None:
        hook = await self.store.webhook(redemption.org)
        if hook is None:
            return
        delivery_id, payload = domain.fulfilment_request(redemption)
        # Queued once per redemption (the id is stable): a relay that runs this again adds nothing.
        await self.webhooks.enqueue(
            delivery_id,
            redemption.org,
            FULFILMENT,
            hook.url,
            canonical_body(payload),
            {"redemption_id": redemption.id},
            people=[redemption.advocate_id],
        )

    async def deliver_webhooks(self) -> int:
        return await self.webhooks.dispatch_due()

    async def deliveries(self, org: str, limit: int) -> list[Delivery]:
        return await self.webhooks.deliveries(org, FULFILMENT, limit)

    async def replay_delivery(self, org: str, delivery_id: str, idempotency_key: str | None) -> Delivery:
        return await self.webhooks.replay(org, FULFILMENT, delivery_id, idempotency_key)
