"""Publishing the sampling plan (art. 12, DRAW.md §1–2, §8): freeze every stratum's pool
and the roster, commit to a fresh secret, and make the plan public before the draw."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot.batches import options, roster
from bot.batches.create import draft_batch
from bot.batches.frequency import frequency_cap
from bot.batches.records import strata_of
from bot.bulkwork import without_collections
from bot.refusal import Refusal
from bot.rules import ssr1
from bot.rules.arguments import Arguments
from bot.rules.risk import RiskWeights
from bot.rules.scope import Scope
from bot.settings import Settings
from storage import audit
from storage.models import Batch
from storage.pools import frozen_pool
from storage.sealing import SealingError, sealer_of

PUBLISH_KEYS = frozenset({"batch", "beacon"})


@without_collections
def publish(session: Session, settings: Settings, actor: str, args: Arguments, now: datetime) -> Batch:
    """Freeze the pools and the roster, commit the seed and publish the plan; the batch leaves draft."""
    batch = draft_batch(session, options.required(args, "batch"))
    strata = strata_of(session, batch.id)
    weights = RiskWeights(**settings.draw.risk_weights.model_dump())
    cap = frequency_cap(settings, now)
    pools = [frozen_pool(session.connection(), Scope.from_json(stratum.filter), weights, cap) for stratum in strata]
    # DRAW.md §1.3, §8: who may be drawn is fixed with the pools, before anyone knows the seed
    # (read while the pools are compressed on another thread).
    batch.roster, batch.roster_digest = roster.freeze(session)
    for stratum, frozen in zip(strata, pools, strict=True):
        stratum.pool, stratum.pool_runs = frozen.compressed(), frozen.runs
        stratum.pool_size, stratum.pool_digest = frozen.size, frozen.digest
        if stratum.ratio_percent is None:  # a stratum has a ratio or a count (options.quota)
            stratum.k = stratum.count
        else:
            stratum.k = ssr1.k_for_ratio(frozen.size, stratum.ratio_percent)
    secret = ssr1.new_secret()  # 32 bytes from the OS CSPRNG (DRAW.md §1)
    try:
        batch.secret_encrypted = sealer_of(session).seal(secret)
    except SealingError as exc:
        raise Refusal("sealing", reason=str(exc)) from None
    batch.commitment = ssr1.commitment(secret)
    batch.beacon_rule = args.get("beacon") or ""
    batch.status, batch.published_at = "published", now
    session.add_all([batch, *strata])
    session.flush()
    audit.record(session, actor, "batch.published", batch.id, commitment=batch.commitment,
                 beacon_rule=batch.beacon_rule, roster_digest=batch.roster_digest, strata=[
                     {"name": s.name, "pool_size": s.pool_size, "pool_digest": s.pool_digest, "k": s.k}
                     for s in strata])
    return batch
