-- Events stay after delivery, for the Backport IG's $events and $status: `delivered` is
-- NULL while an event waits, the time it was sent (ms) after, and 0 when it was never
-- to be sent (its subscription was in error or off). Delivered events are pruned after
-- the retention period (fhir-server subscriptions/deliver.rs).
ALTER TABLE subscription_events ADD COLUMN delivered BIGINT;
DROP INDEX subscription_events_due;
CREATE INDEX subscription_events_due ON subscription_events (next_attempt) WHERE delivered IS NULL;
CREATE INDEX subscription_events_waiting ON subscription_events (subscription_id, event_number) WHERE delivered IS NULL;
CREATE INDEX subscription_events_delivered ON subscription_events (delivered) WHERE delivered IS NOT NULL;
