-- Exact deduplication with plain SQL on a content hash: keep the smallest key per image.
--   lakecap run sql/exact_dedup.sql -D LAKE=sample_lake/ -D OUT=out/exact_dedup/

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';

COPY (
  SELECT key, url, alt, img, crawl FROM (
    SELECT *, row_number() OVER (PARTITION BY sha256(img) ORDER BY key) AS copy_no
    FROM lake WHERE img IS NOT NULL)
  WHERE copy_no = 1)
TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

SELECT count(*) AS rows, count(DISTINCT sha256(img)) AS distinct_images FROM lake WHERE img IS NOT NULL;
