-- phash(img, 'fast') against the exact phash on a sample lake with its truth file:
-- identical hashes, distances, and the near-duplicate pairs each mode finds at
-- 8 bits, scored as precision and recall against the lake's duplicate families
-- (rows with the same coalesce(dup_of, key)). Run by scripts/bench-images.sh:
--   lakecap sample-lake lake2k --rows 2000 --seed 7
--   lakecap run bench/hash_agreement.sql -D LAKE=lake2k -D TRUTH=lake2k.truth.csv

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';
CREATE EXTERNAL TABLE truth STORED AS CSV LOCATION '${TRUTH}' OPTIONS ('format.has_header' 'true');

CREATE TABLE h AS
SELECT l.key, phash(l.img) AS exact, phash(l.img, 'fast') AS fast,
       coalesce(t.dup_of, t.key) AS family
FROM lake l JOIN truth t ON l.key = t.key;
CREATE TABLE usable AS SELECT * FROM h WHERE exact IS NOT NULL;

SELECT count(*) AS images,
       sum(CASE WHEN exact = fast THEN 1 ELSE 0 END) AS identical,
       avg(hamming(exact, fast)) AS mean_bits,
       max(hamming(exact, fast)) AS max_bits
FROM usable;

CREATE TABLE true_pairs AS
SELECT a.key AS a, b.key AS b FROM usable a JOIN usable b ON a.family = b.family AND a.key < b.key;
CREATE TABLE exact_near AS SELECT * FROM near_duplicates('usable', 'key', 'exact', 8);
CREATE TABLE fast_near AS SELECT * FROM near_duplicates('usable', 'key', 'fast', 8);
CREATE TABLE found AS
SELECT 'exact' AS mode, a.key AS a, b.key AS b
FROM exact_near a JOIN exact_near b ON a.cluster_id = b.cluster_id AND a.key < b.key
UNION ALL
SELECT 'fast', a.key, b.key
FROM fast_near a JOIN fast_near b ON a.cluster_id = b.cluster_id AND a.key < b.key;

SELECT f.mode, count(*) AS pairs, count(t.a) AS true_pairs,
       round(count(t.a) * 1.0 / count(*), 3) AS precision,
       round(count(t.a) * 1.0 / (SELECT count(*) FROM true_pairs), 3) AS recall
FROM found f LEFT JOIN true_pairs t ON f.a = t.a AND f.b = t.b
GROUP BY f.mode ORDER BY f.mode;
