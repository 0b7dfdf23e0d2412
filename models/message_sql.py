"""The hot path's SQL: one statement per step of a delivery, written out once.

Each statement does a whole step in one round trip (CTEs join the writes). A message to a
contact whose sticky number this worker knows costs two statements: `ACCEPT_CLAIMING`
(recorded and claimed at once) and `MARK_SENT`; otherwise three: `ACCEPT`, a claim, and
`MARK_SENT`. They run on an autocommit connection (one statement = one transaction, no
BEGIN/COMMIT round trips), except `CLAIM_MOVING_PREFERENCE`, which may have to be rolled
back. PostgreSQL prepares them after a few executions on a connection (psycopg's default).

They run on psycopg's cursor (models/statements.py), so parameters are `%(like_this)s`;
timestamps are aware datetimes, ids UUIDs. The parts several statements share (the
usable-instance check, the claim's UPDATE, the attempt's INSERT) are written once below and
spliced into them when the module is imported.
"""

from __future__ import annotations

from typing import LiteralString

#: The instance a claim is for is usable: active and not banned (a routing snapshot taken
#: before a ban must not send from the banned number). Params: instance.
USABLE_INSTANCE = """
    SELECT 1 FROM instances WHERE name = %(instance)s AND active AND status <> 'banned'
    """


def _claim_message(guard: LiteralString) -> LiteralString:
    """The send guard's UPDATE: a pending message (`queued`/`waiting`) becomes `sending` on
    `instance`, under the claim stamped `now` by `claimant`, only while `guard` (a CTE
    name) has a row. Returns the message id."""
    return f"""
        UPDATE messages
           SET state = 'sending', instance = %(instance)s, attempts = attempts + 1,
               claimed_at = %(now)s, claimed_by = %(claimant)s, not_before = NULL,
               updated_at = %(now)s
         WHERE id = %(id)s AND state IN ('queued', 'waiting') AND EXISTS (SELECT 1 FROM {guard})
        RETURNING id
        """  # noqa: S608 - built from this module's constants only, at import


def _record_attempt(started_at: LiteralString) -> LiteralString:
    """The attempt of each message in the CTE `claimed` (its `id`s): outcome `sending` on
    `instance`, started at the claim's time (the parameter named `started_at`)."""
    return f"""
        INSERT INTO send_attempts (message_id, instance, outcome, started_at, lookups)
        SELECT id, %(instance)s, 'sending', %({started_at})s, 0 FROM claimed
        """  # noqa: S608 - built from this module's constants only, at import


#: A new message and its contact in one statement; the contact row is created or its phone
#: refreshed. Returns one row:
#:   inserted   - the message id, or NULL when the idempotency key (or, for a retry whose
#:                first run committed unseen, the id) already exists
#:   preferred  - the contact's sticky instance as it was before this statement (NULL for
#:                a new contact), so routing needs no second read
#: Params: id, contact_id, phone, text, content_hash, idempotency_key, expires_at, now,
#: campaign.
ACCEPT = """
    WITH contact AS (
        INSERT INTO contacts (id, phone) VALUES (%(contact_id)s, %(phone)s)
        ON CONFLICT (id) DO UPDATE SET phone = EXCLUDED.phone
        WHERE contacts.phone IS DISTINCT FROM EXCLUDED.phone
    ), inserted AS (
        INSERT INTO messages (id, contact_id, phone, text, content_hash, state,
                              idempotency_key, expires_at, attempts, requeues,
                              created_at, updated_at, campaign)
        VALUES (%(id)s, %(contact_id)s, %(phone)s, %(text)s, %(content_hash)s, 'queued',
                %(idempotency_key)s, %(expires_at)s, 0, 0, %(now)s, %(now)s, %(campaign)s)
        ON CONFLICT DO NOTHING
        RETURNING id
    )
    SELECT (SELECT id FROM inserted) AS inserted,
           (SELECT preferred_instance FROM contacts WHERE id = %(contact_id)s) AS preferred
    """

#: `ACCEPT` and the send guard in one statement, for a message routed before it was recorded
#: (the worker thought the contact's sticky instance was `seen`, and reserved a slot on
#: `instance`). The contact row is created, or its phone refreshed, and its preference moves
#: to `instance` only if it still is `seen` (compare-and-set on the locked row: of two
#: concurrent first messages to a new contact, only the first moves it). The message is
#: recorded `sending` on `instance` when that is the contact's sticky instance afterwards,
#: `queued` otherwise. Returns one row:
#:   inserted   - the message id, or NULL as for `ACCEPT` (nothing recorded)
#:   claimed    - whether the message was recorded `sending`
#:   preferred  - the contact's sticky instance afterwards
#:   had_one    - whether the contact had a sticky instance before this statement
#: A preference that stays `seen` is not re-checked under lock (as `CLAIM`): a move racing
#: with this statement may see this one message go out on the old number. Nothing moves
#: and nothing is claimed when `instance` is not usable (inactive or banned), or when the
#: idempotency key (or id) is already recorded: a replayed key changes no preference.
#: Params: those of `ACCEPT`, plus instance, seen, claimed_at (the claim's time, its token)
#: and claimant (models/claimant.py).
ACCEPT_CLAIMING = f"""
    WITH allowed AS (
        SELECT EXISTS ({USABLE_INSTANCE})
           AND NOT EXISTS (SELECT 1 FROM messages WHERE id = %(id)s)
           AND NOT EXISTS (SELECT 1 FROM messages
                            WHERE idempotency_key = %(idempotency_key)s) AS ok
    ), contact AS (
        INSERT INTO contacts AS c (id, phone, preferred_instance, preferred_since)
        VALUES (%(contact_id)s, %(phone)s,
                CASE WHEN (SELECT ok FROM allowed) THEN %(instance)s END,
                CASE WHEN (SELECT ok FROM allowed) THEN CAST(%(now)s AS timestamptz) END)
        ON CONFLICT (id) DO UPDATE
           SET phone = EXCLUDED.phone,
               preferred_instance = CASE WHEN c.preferred_instance IS NOT DISTINCT FROM %(seen)s
                                              AND (SELECT ok FROM allowed)
                                         THEN EXCLUDED.preferred_instance
                                         ELSE c.preferred_instance END,
               preferred_since = CASE WHEN c.preferred_instance IS NOT DISTINCT FROM %(seen)s
                                       AND (SELECT ok FROM allowed)
                                       AND c.preferred_instance
                                           IS DISTINCT FROM EXCLUDED.preferred_instance
                                      THEN EXCLUDED.preferred_since
                                      ELSE c.preferred_since END
         WHERE c.phone IS DISTINCT FROM EXCLUDED.phone
            OR (c.preferred_instance IS NOT DISTINCT FROM %(seen)s
                AND (SELECT ok FROM allowed)
                AND c.preferred_instance IS DISTINCT FROM EXCLUDED.preferred_instance)
        RETURNING c.preferred_instance
    ), before AS (
        SELECT preferred_instance FROM contacts WHERE id = %(contact_id)s
    ), after AS (
        SELECT COALESCE((SELECT preferred_instance FROM contact),
                        (SELECT preferred_instance FROM before)) AS preferred
    ), inserted AS (
        INSERT INTO messages (id, contact_id, phone, text, content_hash, state, instance,
                              idempotency_key, expires_at, attempts, requeues, claimed_at,
                              claimed_by, created_at, updated_at, campaign)
        SELECT %(id)s, %(contact_id)s, %(phone)s, %(text)s, %(content_hash)s,
               CASE WHEN claim THEN 'sending' ELSE 'queued' END,
               CASE WHEN claim THEN %(instance)s END,
               %(idempotency_key)s, %(expires_at)s, CASE WHEN claim THEN 1 ELSE 0 END, 0,
               CASE WHEN claim THEN CAST(%(claimed_at)s AS timestamptz) END,
               CASE WHEN claim THEN CAST(%(claimant)s AS varchar) END, %(now)s, %(now)s,
               %(campaign)s
          FROM (SELECT COALESCE(preferred = %(instance)s, false) AND (SELECT ok FROM allowed)
                       AS claim FROM after) AS decided
        ON CONFLICT DO NOTHING
        RETURNING id, state
    ), claimed AS (
        SELECT id FROM inserted WHERE state = 'sending'
    ), attempt AS ({_record_attempt("claimed_at")})
    SELECT (SELECT id FROM inserted) AS inserted,
           COALESCE((SELECT state = 'sending' FROM inserted), false) AS claimed,
           (SELECT preferred FROM after) AS preferred,
           EXISTS (SELECT 1 FROM before WHERE preferred_instance IS NOT NULL) AS had_one
    """  # noqa: S608 - built from this module's constants only

#: The send guard when the contact keeps its sticky instance: `queued`/`waiting` →
#: `sending` on `instance`, and the attempt recorded (`send_attempts`, outcome `sending`),
#: only while `instance` is usable (active, not banned: a routing snapshot taken before a
#: ban must not send from the banned number). Returns one row (claimed, usable).
#: Params: id, instance, now, claimant (models/claimant.py).
CLAIM = f"""
    WITH usable AS ({USABLE_INSTANCE}
    ), claimed AS ({_claim_message("usable")}
    ), attempt AS ({_record_attempt("now")}
    )
    SELECT EXISTS (SELECT 1 FROM claimed) AS claimed, EXISTS (SELECT 1 FROM usable) AS usable
    """  # noqa: S608 - built from this module's constants only

#: The send guard when the contact's sticky instance moves to `instance`: the preference
#: moves only if it still is `seen` (compare-and-set), and the message is claimed only if
#: the preference moved, both only while `instance` is usable (as `CLAIM`). Returns one row
#: (moved, claimed, usable); when moved and not claimed the caller rolls back, so neither
#: change is kept.
#: Params: id, contact_id, seen, instance, now, claimant.
CLAIM_MOVING_PREFERENCE = f"""
    WITH usable AS ({USABLE_INSTANCE}
    ), moved AS (
        UPDATE contacts SET preferred_instance = %(instance)s, preferred_since = %(now)s
         WHERE id = %(contact_id)s AND preferred_instance IS NOT DISTINCT FROM %(seen)s
           AND EXISTS (SELECT 1 FROM usable)
        RETURNING 1
    ), claimed AS ({_claim_message("moved")}
    ), attempt AS ({_record_attempt("now")}
    )
    SELECT EXISTS (SELECT 1 FROM moved) AS moved, EXISTS (SELECT 1 FROM claimed) AS claimed,
           EXISTS (SELECT 1 FROM usable) AS usable
    """  # noqa: S608 - built from this module's constants only

#: `sending` → `sent` (and its attempt), and the instance's success recorded in the same
#: statement: its
#: breaker closed and `last_message_at` stamped. The instance row is written only when that
#: changes something visible (failures to clear, or a stamp older than a second), so a busy
#: number's row is not rewritten, and its lock not taken, on every send.
#: Returns one row (sent): whether this call moved the message.
#: Params: id, provider_message_id, now, instance (NULL: no instance to stamp), note (NULL,
#: or why the provider id is missing), claimed_at (the claim's token: the message is sent
#: only while still under that claim, so a send the sweep re-drove is not recorded twice;
#: NULL: no check).
MARK_SENT = """
    WITH sent AS (
        UPDATE messages
           SET state = 'sent', provider_message_id = %(provider_message_id)s, sent_at = %(now)s,
               last_error = %(note)s, updated_at = %(now)s
         WHERE id = %(id)s AND state = 'sending'
           AND (CAST(%(claimed_at)s AS timestamptz) IS NULL OR claimed_at = %(claimed_at)s)
        RETURNING 1
    ), attempt AS (
        UPDATE send_attempts
           SET outcome = 'sent', ended_at = %(now)s, provider_message_id = %(provider_message_id)s
         WHERE message_id = %(id)s AND outcome = 'sending' AND EXISTS (SELECT 1 FROM sent)
    ), stamped AS (
        UPDATE instances
           SET last_message_at = %(now)s, consecutive_failures = 0, circuit_opened_at = NULL
         WHERE name = %(instance)s AND EXISTS (SELECT 1 FROM sent)
           AND (consecutive_failures > 0 OR circuit_opened_at IS NOT NULL
                OR last_message_at IS NULL
                OR last_message_at < CAST(%(now)s AS timestamptz) - INTERVAL '1 second')
    )
    SELECT EXISTS (SELECT 1 FROM sent) AS sent
    """

#: What routing needs about one message and its contact's sticky instance, in one read,
#: with the attempt whose outcome is still unknown (NULL columns when there is none).
#: Params: id.
ROUTING_INPUT = """
    SELECT m.id, m.contact_id, m.phone, m.text, m.state, m.instance,
           m.provider_message_id, m.attempts, m.requeues, m.idempotency_key, m.not_before,
           m.expires_at, m.created_at, m.sent_at, m.last_error, m.campaign,
           c.preferred_instance,
           u.id AS unknown_attempt, u.instance AS unknown_instance,
           u.started_at AS unknown_since, u.lookups AS unknown_lookups
      FROM messages m LEFT JOIN contacts c ON c.id = m.contact_id
      LEFT JOIN LATERAL (
          SELECT a.id, a.instance, a.started_at, a.lookups FROM send_attempts a
           WHERE a.message_id = m.id AND a.outcome = 'unknown'
           ORDER BY a.id DESC LIMIT 1
      ) u ON true
     WHERE m.id = %(id)s
    """
