-- Ranking + LLM fusion: score every candidate caption of an image (its alt
-- text and each synthetic caption) by CLIPScore, then fuse the best two, the
-- better one as the caption that fusion keeps the visual details of.
--   lakecap run sql/rank_fuse.sql -D LAKE=sample_lake/ \
--     -D CAPTIONS=sample_lake.captions.parquet -D OUT=out/rank_fuse/
-- CAPTIONS may hold several captions per key (one per captioner or sample).

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';
CREATE EXTERNAL TABLE captions STORED AS PARQUET LOCATION '${CAPTIONS}';

CREATE TABLE candidates AS
SELECT key, img, alt AS text, 'alt' AS source, crawl FROM lake
WHERE img IS NOT NULL AND alt IS NOT NULL AND alt <> ''
UNION ALL
SELECT l.key, l.img, c.caption, 'caption', l.crawl
FROM lake l JOIN captions c ON c.key = l.key WHERE l.img IS NOT NULL;

CREATE TABLE ranked AS
SELECT key, text, source, score, crawl,
       row_number() OVER (PARTITION BY key ORDER BY score DESC, source) AS rank
FROM (SELECT key, text, source, crawl, clip_score(img, text) AS score FROM candidates)
WHERE score IS NOT NULL;

CREATE TABLE best AS
SELECT key, max(crawl) AS crawl,
       max(CASE WHEN rank = 1 THEN text END) AS first,
       max(CASE WHEN rank = 1 THEN source END) AS first_source,
       max(CASE WHEN rank = 2 THEN text END) AS second
FROM ranked WHERE rank <= 2 GROUP BY key;

COPY (SELECT key, first, first_source, second, fuse(second, first) AS caption, crawl
      FROM best ORDER BY key)
TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

SELECT count(*) AS images,
       sum(CASE WHEN first_source = 'alt' THEN 1 ELSE 0 END) AS alt_ranked_first,
       sum(CASE WHEN first_source = 'caption' THEN 1 ELSE 0 END) AS caption_ranked_first
FROM best;
