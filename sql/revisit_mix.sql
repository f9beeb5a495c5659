-- Apple's "Revisit Large-Scale Image-Caption Data in Pre-training Multimodal
-- Foundation Models" (Lai et al., 2024): keep both the web alt text and the
-- synthetic caption, and mix them at a ratio chosen per target model (CLIP
-- gains from a mix of both; multimodal LLMs and diffusion models prefer more
-- synthetic, descriptive captions).
--   lakecap run sql/revisit_mix.sql -D LAKE=sample_lake/ \
--     -D CAPTIONS=sample_lake.captions.parquet -D OUT=out/revisit/ -D SYNTHETIC_SHARE=0.5
-- SYNTHETIC_SHARE: the share of rows that train on the synthetic caption
-- (e.g. 0.5 for CLIP, 0.9 for a multimodal LLM); the choice per row is a
-- deterministic hash of its key, so reruns pick the same text. Rows without a
-- usable alt text always take the synthetic caption.

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';
CREATE EXTERNAL TABLE captions STORED AS PARQUET LOCATION '${CAPTIONS}';

CREATE TABLE mixed AS
SELECT l.key, l.alt, c.caption, l.crawl,
       CASE
         WHEN l.alt IS NULL OR alt_quality(l.alt)['score'] < 0.1 THEN 'synthetic'
         WHEN (strpos('0123456789abcdef', substr(md5(l.key), 1, 1)) - 1) / 16.0 < ${SYNTHETIC_SHARE} THEN 'synthetic'
         ELSE 'alt'
       END AS source
FROM lake l JOIN captions c ON c.key = l.key
WHERE l.img IS NOT NULL;

COPY (SELECT key, alt, caption, CASE WHEN source = 'synthetic' THEN caption ELSE alt END AS text,
             source, crawl
      FROM mixed ORDER BY key)
TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

SELECT count(*) AS rows,
       sum(CASE WHEN source = 'synthetic' THEN 1 ELSE 0 END) AS synthetic,
       sum(CASE WHEN source = 'alt' THEN 1 ELSE 0 END) AS alt
FROM mixed;
