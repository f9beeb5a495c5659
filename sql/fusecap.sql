-- FuseCap (Rotstein et al., "FuseCap: Leveraging Large Language Models for
-- Enriched Fused Image Captions", 2023): outputs of frozen vision experts
-- (objects, attributes, OCR) are fused into the caption by an LLM. Here the
-- expert is CLIP zero-shot tagging over a label list (lakecap.clip_model);
-- join detector or OCR tables the same way to add theirs.
--   lakecap run sql/fusecap.sql -D LAKE=sample_lake/ \
--     -D CAPTIONS=sample_lake.captions.parquet -D OUT=out/fusecap/

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';
CREATE EXTERNAL TABLE captions STORED AS PARQUET LOCATION '${CAPTIONS}';

CREATE TABLE labels(label VARCHAR) AS VALUES
  ('person'), ('cat'), ('dog'), ('horse'), ('bird'), ('car'), ('rocket'), ('aircraft'),
  ('building'), ('bridge'), ('tree'), ('flower'), ('food'), ('cup'), ('clock'), ('coins'),
  ('text'), ('flag'), ('sky'), ('water'), ('mountain'), ('galaxy'), ('moon'), ('wall');

-- Each image is embedded once and each label once (the session memo), then scored.
CREATE TABLE tag_scores AS
SELECT l.key, t.label, clip_score(l.img, 'a photo of a ' || t.label) AS score
FROM lake l CROSS JOIN labels t WHERE l.img IS NOT NULL;

CREATE TABLE tags AS
SELECT key, string_agg(label, ', ' ORDER BY score DESC) AS tags
FROM (SELECT key, label, score,
             row_number() OVER (PARTITION BY key ORDER BY score DESC, label) AS r
      FROM tag_scores WHERE score IS NOT NULL)
WHERE r <= 3 GROUP BY key;

CREATE TABLE fused AS
SELECT l.key, l.alt, c.caption, t.tags,
       fuse(l.alt, c.caption, 'objects: ' || t.tags) AS fused, l.crawl
FROM lake l JOIN captions c ON c.key = l.key JOIN tags t ON t.key = l.key;

COPY (SELECT * FROM fused ORDER BY key) TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

SELECT count(*) AS rows, count(tags) AS tagged,
       sum(CASE WHEN fused <> caption THEN 1 ELSE 0 END) AS fused
FROM fused;
