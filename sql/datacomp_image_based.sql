-- DataComp's image-based filter (Gadre et al. 2023, "DataComp: In search of
-- the next generation of multimodal datasets"): keep the pool samples whose
-- image falls in a cluster that some reference image is nearest to. The
-- paper's references are the ImageNet-1k training images.
--   LAKECAP_CLIP_MODEL=... lakecap run sql/datacomp_image_based.sql \
--     -D LAKE=sample_lake/ -D REFERENCE=reference.parquet -D OUT=out/image_based/
-- REFERENCE is a parquet file or folder with columns key and v: the
-- reference images' embeddings from the same CLIP model, e.g.
--   COPY (SELECT key, embed_image(img) AS v FROM imagenet) TO 'reference.parquet' STORED AS PARQUET;
-- Departures: the paper clusters CLIP ViT-L/14 image embeddings of the 12.8M
-- pool into 100,000 clusters with faiss (L2 k-means on unit vectors); here
-- spherical k-means (cosine; on unit vectors the nearest centroid is the same)
-- with 32 clusters, sized for the sample lake: use about n/128, as the paper
-- did. The paper's best pool also intersects this with the CLIP-score filter
-- (sql/datacomp_filter.sql).

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';
CREATE EXTERNAL TABLE reference STORED AS PARQUET LOCATION '${REFERENCE}';

CREATE TABLE emb AS
SELECT key, embed_image(img) AS v FROM lake WHERE image_error(img) IS NULL;

-- kmeans is deterministic for a seed on a device, so both calls give the same
-- clusters: one row per row, one row per centroid.
CREATE TABLE clusters AS SELECT * FROM kmeans('emb', 'key', 'v', 32, 'seed=0');
CREATE TABLE centroids AS
SELECT * FROM kmeans('emb', 'key', 'v', 32, 'seed=0; output=centroids');

-- Each reference's nearest centroid.
CREATE TABLE wanted AS
SELECT DISTINCT ckey AS "cluster"
FROM knn('reference', 'key', 'v', 'centroids', 'cluster', 'centroid', 1);

CREATE TABLE kept AS
SELECT c.key FROM clusters c JOIN wanted w ON w."cluster" = c."cluster";

COPY (SELECT l.key, l.url, l.img, l.alt, l.crawl
      FROM lake l JOIN kept k ON k.key = l.key ORDER BY l.key)
TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

SELECT (SELECT count(*) FROM lake) AS rows,
       (SELECT count(*) FROM emb) AS embedded,
       (SELECT count(*) FROM reference) AS reference_images,
       (SELECT count(*) FROM centroids) AS clusters,
       (SELECT count(*) FROM wanted) AS clusters_kept,
       (SELECT count(*) FROM kept) AS kept;
