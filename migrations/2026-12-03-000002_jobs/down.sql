DROP TABLE stripe_objects;
DROP TABLE scheduler_ticks;
DROP TABLE sync_runs;
DROP TABLE integrations;
