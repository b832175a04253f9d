DROP TABLE subscription_counters;
DROP TABLE subscription_events;
DROP TABLE change_outbox;
