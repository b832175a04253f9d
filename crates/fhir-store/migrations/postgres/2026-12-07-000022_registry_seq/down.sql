DROP INDEX resources_subscription_seq;
DROP INDEX resources_basic_seq;
