-- NoC alignment levels (Kang et al., "Noise-aware Learning from Web-crawled
-- Image-Text Data for Image Captioning", ICCV 2023): each pair's CLIP cosine
-- s between image and alt text, raw (not clipped at 0 as CLIPScore is), and
-- its level: the index of its bucket among 8 equal-width buckets over
-- [min s, max s] of the lake. A captioner trained with the level as a control
-- signal is then asked for the top level at inference.
--   LAKECAP_CLIP_MODEL=openai/clip-vit-base-patch32 LAKECAP_TEXT_MODEL=openai/clip-vit-base-patch32 \
--     lakecap run sql/noc_buckets.sql -D LAKE=sample_lake/ -D OUT=out/noc/
-- embed_text must use the same CLIP model (its text tower) as embed_image.

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';

CREATE TABLE sims AS
SELECT key, cosine(embed_image(img), embed_text(alt)) AS s
FROM lake WHERE image_error(img) IS NULL AND alt IS NOT NULL;

CREATE TABLE bounds AS SELECT min(s) AS lo, max(s) AS hi FROM sims;

-- Level 0..7; the maximum falls in the top bucket; one value everywhere is level 0.
CREATE TABLE levels AS
SELECT key, s,
       coalesce(least(CAST(floor((s - lo) / nullif(hi - lo, 0) * 8) AS INT), 7), 0) AS level
FROM sims, bounds WHERE s IS NOT NULL;

COPY (SELECT l.key, l.url, l.alt, l.img, v.s AS alignment, v.level, l.crawl
      FROM lake l JOIN levels v ON v.key = l.key ORDER BY l.key)
TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

SELECT level, count(*) AS rows, min(s) AS min_s, max(s) AS max_s
FROM levels GROUP BY level ORDER BY level;
