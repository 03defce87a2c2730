DROP TABLE metric_dirty;
DROP TABLE metric_daily;
