-- DataComp-style CLIP filtering: keep rows whose image matches its alt text,
-- by an absolute CLIPScore threshold and by a top fraction of the lake.
--   LAKECAP_CLIP_MODEL=openai/clip-vit-base-patch32 \
--     lakecap run sql/datacomp_filter.sql -D LAKE=sample_lake/ -D OUT=out/datacomp/
-- (clip_score = 100 x cosine; DataComp's ViT-B/32 baseline keeps cosine >= 0.28, i.e. 28,
--  or the top 30% by score.)

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';

-- One CLIP pass: each distinct image and alt text is embedded once.
CREATE TABLE scored AS
SELECT key, url, alt, img, crawl, clip_score(img, alt) AS score
FROM lake WHERE alt IS NOT NULL;

-- The score at the 70th percentile: rows above it are the top 30%.
CREATE TABLE cut AS SELECT approx_percentile_cont(0.7) WITHIN GROUP (ORDER BY score) AS p70 FROM scored;

COPY (SELECT s.key, s.url, s.alt, s.img, s.score, s.crawl
      FROM scored s, cut
      WHERE s.score >= 28 OR s.score >= cut.p70
      ORDER BY s.key)
TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

SELECT count(*) AS rows, count(score) AS scored,
       sum(CASE WHEN score >= 28 THEN 1 ELSE 0 END) AS above_28,
       round(max(cut.p70), 2) AS p70
FROM scored, cut;
