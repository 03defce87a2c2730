DROP TABLE stripe_customers;
DROP TABLE scheduler_ticks;
DROP TABLE sync_runs;
DROP TABLE integrations;
