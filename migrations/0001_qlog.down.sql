DROP TABLE IF EXISTS qlog_history;
DROP TABLE IF EXISTS qlog_snapshots;
