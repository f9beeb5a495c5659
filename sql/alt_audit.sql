-- Audit web alt texts: what share is usable as a caption, and what kind of junk the rest is.
--   lakecap run sql/alt_audit.sql -D LAKE=sample_lake/

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';

CREATE TABLE q AS SELECT key, alt, alt_quality(alt) AS q FROM lake;

SELECT CASE
         WHEN alt IS NULL OR q['chars'] = 0 THEN 'missing'
         WHEN q['is_filename'] THEN 'file name'
         WHEN q['is_boilerplate'] THEN 'boilerplate'
         WHEN q['is_ad'] THEN 'advertising'
         WHEN q['has_url'] THEN 'url'
         WHEN q['score'] < 0.5 THEN 'too short'
         ELSE 'usable'
       END AS kind,
       count(*) AS rows,
       round(avg(q['score']), 3) AS mean_score
FROM q GROUP BY 1 ORDER BY rows DESC;
