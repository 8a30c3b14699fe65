"""Steps 2 and 3 of routing for the Router: who may write (the registry, cached per container) and the event
time each delivery keys its row by (a claim per message id, or once per gateway batch). A mixin: the Router
holds the store, the settings and the cache."""

from __future__ import annotations

import time
from dataclasses import replace

from cloud.router.config import RouterConfig
from cloud.router.routing import Parsed, Rejected, pin_to
from cloud.stores import DeadLetter, ResultsStore
from contracts.registry import Registration


class Authority:
    config: RouterConfig
    store: ResultsStore
    _gateways: dict[str, tuple[float, Registration]]

    def _gateway(self, thing: str) -> Registration | None:
        """The thing's registry entry, kept `registry_cache_s` per container (a miss is not kept)."""
        now = time.monotonic()
        cached = self._gateways.get(thing)
        if cached and cached[0] > now:
            return cached[1]
        entry = self.store.gateway(thing)
        if entry is not None and self.config.registry_cache_s > 0:
            self._gateways[thing] = (now + self.config.registry_cache_s, entry)
        return entry

    def _authorize(self, parsed: Parsed, now_s: float, claim: bool = True) -> Parsed:
        """The message with its registered site and its first delivery's time; Rejected when the thing may
        not write for the site or camera it names. `claim` False: the time is left to the caller (a batch
        claims once for all its items, `claim_batch`); an escalation naming its batch claims that batch."""
        r, thing = parsed.request, parsed.thing
        entry = self._gateway(thing)
        refusal = entry.refusal(r.site, r.camera) if entry else (
            f"thing {thing!r} is not a registered gateway; register its site and cameras with `edge-agent "
            "provision --registry-table` or `framesieve-cloud register`")
        if refusal:
            raise Rejected(DeadLetter(key=f"{r.message_id}:unauthorized", t_s=now_s, kind="unauthorized",
                                      reason=refusal, topic=parsed.topic, thing=thing, size=parsed.size,
                                      excerpt=f"site={r.site!r:.60} camera={r.camera!r:.60}"),
                           (r.message_id, r.camera, r.frame_index))
        assert entry is not None
        parsed = replace(parsed, request=replace(r, site=entry.site))
        if not claim:
            return parsed
        if r.batch_id:  # re-sent alone after its batch was refused: the batch's anchor, whoever claimed it first
            return self.claim_batch(parsed, r.batch_id)
        return self.claim_message(parsed)

    def claim_message(self, parsed: Parsed) -> Parsed:
        """The message's time: its first delivery's, claimed per (thing, message id)."""
        days = self.config.retention_days or 30
        r = parsed.request
        t_s = self.store.claim_message(parsed.thing, r.message_id, parsed.t_s, int(parsed.t_s + days * 86400))
        return replace(parsed, t_s=t_s)

    def batch_anchor(self, parsed: Parsed, batch_id: str) -> float:
        """The batch's anchor: its first receive time, claimed once per (thing, batch id) - one write for the
        whole batch, whether it first came whole or as one of its escalations re-sent alone."""
        days = self.config.retention_days or 30
        received = parsed.received_s or parsed.t_s
        return self.store.claim_batch(parsed.thing, batch_id, received, int(received + days * 86400))

    def claim_batch(self, parsed: Parsed, batch_id: str) -> Parsed:
        """The escalation's time from its batch's anchor (routing.pin_to)."""
        return pin_to(parsed, self.batch_anchor(parsed, batch_id), self.config.event_window_s)

    def authorize(self, parsed: Parsed, now_s: float, claim: bool = True) -> Parsed:
        return self._authorize(parsed, now_s, claim)
