-- Perceptual near-duplicate clusters (re-encoded, resized, cropped copies).
--   lakecap run sql/near_dedup.sql -D LAKE=sample_lake/

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';

-- Hash once; undecodable images give NULL (counted warnings) and are skipped.
CREATE TABLE hashes AS SELECT key, phash(img) AS ph, dhash(img) AS dh FROM lake;

-- Clusters within 8 bits; both hashes must agree that a pair is close.
CREATE TABLE clusters AS SELECT * FROM near_duplicates('hashes', 'key', 'ph', 8);

SELECT c.cluster_id, c.key, c.representative, c.distance AS phash_distance,
       hamming(h.dh, r.dh) AS dhash_distance
FROM clusters c
JOIN hashes h ON h.key = c.key
JOIN hashes r ON r.key = c.representative
ORDER BY c.cluster_id, c.distance, c.key;
