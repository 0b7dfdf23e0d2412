"""The hot path's SQL: one statement per step of a delivery, written out once.

Each statement does a whole step in one round trip (CTEs join the writes), so a message
costs three statements in steady state: accept, claim, record. They run on an autocommit
connection (one statement = one transaction, no BEGIN/COMMIT round trips), except
`CLAIM_MOVING_PREFERENCE`, which may have to be rolled back. As text they are compiled
once per process; PostgreSQL prepares them after a few executions (psycopg's default).

Parameters are named `:like_this`; timestamps are aware datetimes, ids UUIDs.
"""

from __future__ import annotations

from sqlalchemy import text

#: A new message and its contact in one statement; the contact row is created or its phone
#: refreshed. Returns one row:
#:   inserted   - the message id, or NULL when the idempotency key (or, for a retry whose
#:                first run committed unseen, the id) already exists
#:   preferred  - the contact's sticky instance as it was before this statement (NULL for
#:                a new contact), so routing needs no second read
#: Params: id, contact_id, phone, text, content_hash, idempotency_key, expires_at, now.
ACCEPT = text(
    """
    WITH contact AS (
        INSERT INTO contacts (id, phone) VALUES (:contact_id, :phone)
        ON CONFLICT (id) DO UPDATE SET phone = EXCLUDED.phone
        WHERE contacts.phone IS DISTINCT FROM EXCLUDED.phone
    ), inserted AS (
        INSERT INTO messages (id, contact_id, phone, text, content_hash, state,
                              idempotency_key, expires_at, attempts, requeues,
                              created_at, updated_at)
        VALUES (:id, :contact_id, :phone, :text, :content_hash, 'queued',
                :idempotency_key, :expires_at, 0, 0, :now, :now)
        ON CONFLICT DO NOTHING
        RETURNING id
    )
    SELECT (SELECT id FROM inserted) AS inserted,
           (SELECT preferred_instance FROM contacts WHERE id = :contact_id) AS preferred
    """
)

#: The send guard when the contact keeps its sticky instance: `queued`/`waiting` →
#: `sending` on :instance. Returns a row only if this call moved the message.
#: Params: id, instance, now.
CLAIM = text(
    """
    UPDATE messages
       SET state = 'sending', instance = :instance, attempts = attempts + 1,
           claimed_at = :now, not_before = NULL, updated_at = :now
     WHERE id = :id AND state IN ('queued', 'waiting')
    RETURNING 1
    """
)

#: The send guard when the contact's sticky instance moves to :instance: the preference
#: moves only if it still is :seen (compare-and-set), and the message is claimed only if
#: the preference moved. Returns one row (moved, claimed); when moved and not claimed the
#: caller rolls back, so neither change is kept.
#: Params: id, contact_id, seen, instance, now.
CLAIM_MOVING_PREFERENCE = text(
    """
    WITH moved AS (
        UPDATE contacts SET preferred_instance = :instance, preferred_since = :now
         WHERE id = :contact_id AND preferred_instance IS NOT DISTINCT FROM :seen
        RETURNING 1
    ), claimed AS (
        UPDATE messages
           SET state = 'sending', instance = :instance, attempts = attempts + 1,
               claimed_at = :now, not_before = NULL, updated_at = :now
         WHERE id = :id AND state IN ('queued', 'waiting') AND EXISTS (SELECT 1 FROM moved)
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM moved) AS moved, EXISTS (SELECT 1 FROM claimed) AS claimed
    """
)

#: `sending` → `sent`, and the instance's success recorded in the same statement: its
#: breaker closed and `last_message_at` stamped. The instance row is written only when that
#: changes something visible (failures to clear, or a stamp older than a second), so a busy
#: number's row is not rewritten, and its lock not taken, on every send.
#: Returns one row (sent): whether this call moved the message.
#: Params: id, provider_message_id, now, instance (NULL: no instance to stamp).
MARK_SENT = text(
    """
    WITH sent AS (
        UPDATE messages
           SET state = 'sent', provider_message_id = :provider_message_id, sent_at = :now,
               last_error = NULL, updated_at = :now
         WHERE id = :id AND state = 'sending'
        RETURNING 1
    ), stamped AS (
        UPDATE instances
           SET last_message_at = :now, consecutive_failures = 0, circuit_opened_at = NULL
         WHERE name = :instance AND EXISTS (SELECT 1 FROM sent)
           AND (consecutive_failures > 0 OR circuit_opened_at IS NOT NULL
                OR last_message_at IS NULL
                OR last_message_at < CAST(:now AS timestamptz) - INTERVAL '1 second')
    )
    SELECT EXISTS (SELECT 1 FROM sent) AS sent
    """
)

#: What routing needs about one message and its contact's sticky instance, in one read.
#: Params: id.
ROUTING_INPUT = text(
    """
    SELECT m.id, m.contact_id, m.phone, m.text, m.state, m.instance,
           m.provider_message_id, m.attempts, m.requeues, m.idempotency_key, m.not_before,
           m.expires_at, m.created_at, m.sent_at, m.last_error,
           c.preferred_instance
      FROM messages m LEFT JOIN contacts c ON c.id = m.contact_id
     WHERE m.id = :id
    """
)
