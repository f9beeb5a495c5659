-- VeCLIP (Lai et al., "VeCLIP: Improving CLIP Training via Visual-enriched
-- Captions", 2023): an LLM rewrites the alt text with a visual-enriched
-- caption into one short sentence (VeC); training then mixes alt text and VeC
-- half and half, which keeps the alt text's diversity.
--   lakecap run sql/veclip.sql -D LAKE=sample_lake/ \
--     -D CAPTIONS=sample_lake.captions.parquet -D OUT=out/veclip/
-- The prompt is VeCLIP's; model and sampling: lakecap.llm.*.

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';
CREATE EXTERNAL TABLE captions STORED AS PARQUET LOCATION '${CAPTIONS}';

CREATE TABLE vec AS
SELECT l.key, l.alt, c.caption, l.crawl,
       llm('Rephrase the following two sentences into one short sentence while adhering to the provided image content: Sentence 1: {1} Sentence 2: {2}',
           l.alt, c.caption) AS vec
FROM lake l JOIN captions c ON c.key = l.key
WHERE l.img IS NOT NULL AND l.alt IS NOT NULL;

-- The mix: a deterministic half of the rows train on VeC, the rest on alt text.
COPY (SELECT key, alt, vec,
             CASE WHEN substr(md5(key), 1, 1) < '8' AND vec <> '' THEN vec ELSE alt END AS caption,
             crawl
      FROM vec ORDER BY key)
TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

SELECT count(*) AS rows, count(vec) AS rewritten,
       sum(CASE WHEN substr(md5(key), 1, 1) < '8' THEN 1 ELSE 0 END) AS trained_on_vec
FROM vec;
