-- CapsFusion (Yu et al., "CapsFusion: Rethinking Image-Text Data at Scale",
-- 2023): an LLM merges the real-world knowledge of web alt text (names,
-- places, dates) with the structure and visual detail of a synthetic caption.
--   lakecap run sql/capsfusion.sql -D LAKE=sample_lake/ \
--     -D CAPTIONS=sample_lake.captions.parquet -D OUT=out/capsfusion/
-- CAPTIONS: a (key, caption) table, e.g. a captioner's output, or the sample
-- lake's image descriptions (written by `lakecap sample-lake` beside the lake).
-- Model and sampling: lakecap.llm.* (SmolLM2-135M-Instruct by default, from
-- scripts/fetch-models.sh); prompt: lakecap.fuse.prompt (udfs/prompts/fuse.txt).
-- Rows whose alt text carries no facts keep their caption (see fuse's docs).

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';
CREATE EXTERNAL TABLE captions STORED AS PARQUET LOCATION '${CAPTIONS}';

CREATE TABLE fused AS
SELECT l.key, l.url, l.alt, c.caption, fuse(l.alt, c.caption) AS fused, l.crawl
FROM lake l JOIN captions c ON c.key = l.key
WHERE l.img IS NOT NULL;

COPY (SELECT key, url, alt, caption, fused, crawl FROM fused ORDER BY key)
TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

SELECT count(*) AS rows,
       sum(CASE WHEN fused <> caption THEN 1 ELSE 0 END) AS fused,
       sum(CASE WHEN fused = caption THEN 1 ELSE 0 END) AS caption_kept
FROM fused;
