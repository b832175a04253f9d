DROP INDEX subscription_events_delivered;
DROP INDEX subscription_events_waiting;
DROP INDEX subscription_events_due;
DELETE FROM subscription_events WHERE delivered IS NOT NULL;
ALTER TABLE subscription_events DROP COLUMN delivered;
CREATE INDEX subscription_events_due ON subscription_events (next_attempt);
