-- Caption dedup with a sentence encoder (all-MiniLM-L6-v2 by default, from
-- scripts/fetch-models.sh): alt texts that say the same thing in other words.
--   lakecap run sql/caption_dedup.sql -D LAKE=sample_lake/

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';

-- Only usable alt texts; each distinct text is embedded once.
CREATE TABLE emb AS
SELECT key, alt, embed_text(alt) AS v FROM lake
WHERE alt IS NOT NULL AND alt_quality(alt)['score'] >= 0.1;

CREATE TABLE sem AS SELECT * FROM semantic_duplicates('emb', 'key', 'v', 0.9);

SELECT count(*) AS captions,
       sum(CASE WHEN dup_of IS NOT NULL THEN 1 ELSE 0 END) AS paraphrase_duplicates
FROM sem;

SELECT e.alt, d.alt AS duplicate_of, round(s.similarity, 3) AS similarity
FROM sem s JOIN emb e ON e.key = s.key JOIN emb d ON d.key = s.dup_of
ORDER BY 3 DESC, 1 LIMIT 20;
