-- The subscription dispatcher reads its subscriptions and topics again whenever the
-- highest `seq` of a Subscription or a Basic changes (on any node: fhir-store
-- changes.rs, `latest_seq_of`). Without these, each check walked every resource of the
-- type (0.25 ms with 1,000 subscriptions, and several times a round); with them it
-- reads one index entry. Only writes of these two types touch them.
CREATE INDEX resources_subscription_seq ON resources (seq) WHERE res_type = 'Subscription';
CREATE INDEX resources_basic_seq ON resources (seq) WHERE res_type = 'Basic';
