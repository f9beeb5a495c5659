-- Aesthetic filter, as LAION-Aesthetics was made (Schuhmann et al. 2022,
-- LAION-5B): keep the images whose predicted aesthetic score is at least
-- MIN_SCORE. The predictor is LAION's improved aesthetic predictor, an MLP
-- over L2-normalised CLIP ViT-L/14 image embeddings giving scores of about
-- 1 to 10; LAION-Aesthetics v2 cut at 4.5, 5, 6, 6.25 and 6.5.
--   python scripts/convert-head.py aesthetic-v2 sac+logos+ava1-l14-linearMSE.pth heads/aesthetic-v2
--   LAKECAP_CLIP_MODEL=<openai/clip-vit-large-patch14 directory> lakecap run sql/aesthetic_filter.sql \
--     -D LAKE=sample_lake/ -D HEAD=heads/aesthetic-v2 -D MIN_SCORE=5 -D OUT=out/aesthetic/
-- The head must match the CLIP model: ViT-L/14 heads take 768-wide
-- embeddings, and embedding_head refuses any other width at planning.

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';

CREATE TABLE scored AS
SELECT key, embedding_head(embed_image(img), '${HEAD}') AS aesthetic
FROM lake WHERE image_error(img) IS NULL;

COPY (SELECT l.key, l.url, l.img, l.alt, s.aesthetic, l.crawl
      FROM lake l JOIN scored s ON s.key = l.key
      WHERE s.aesthetic >= ${MIN_SCORE} ORDER BY l.key)
TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

SELECT (SELECT count(*) FROM lake) AS rows,
       count(aesthetic) AS scored,
       sum(CASE WHEN aesthetic >= ${MIN_SCORE} THEN 1 ELSE 0 END) AS kept,
       min(CASE WHEN aesthetic >= ${MIN_SCORE} THEN aesthetic END) AS min_kept_score,
       max(CASE WHEN aesthetic < ${MIN_SCORE} THEN aesthetic END) AS max_dropped_score
FROM scored;
