-- SemDeDup on CLIP image embeddings: within k-means clusters, images whose
-- embeddings are nearly identical (cosine >= 0.95) are duplicates of the one
-- nearest the cluster centroid.
--   LAKECAP_CLIP_MODEL=openai/clip-vit-base-patch32 \
--     lakecap run sql/semdedup.sql -D LAKE=sample_lake/

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';

-- Undecodable images give NULL vectors (counted warnings) and are skipped.
CREATE TABLE emb AS SELECT key, embed_image(img) AS v FROM lake;

CREATE TABLE sem AS SELECT * FROM semantic_duplicates('emb', 'key', 'v', 0.95);

SELECT count(*) AS embedded,
       sum(CASE WHEN dup_of IS NULL THEN 1 ELSE 0 END) AS kept,
       sum(CASE WHEN dup_of IS NOT NULL THEN 1 ELSE 0 END) AS duplicates,
       count(DISTINCT cluster) AS clusters
FROM sem;

SELECT key, dup_of, round(similarity, 3) AS similarity
FROM sem WHERE dup_of IS NOT NULL ORDER BY similarity DESC, key LIMIT 20;
