-- TL;DR data reduction (Wang et al., "Too Large; Data Reduction for
-- Vision-Language Pre-Training", ICCV 2023), as a recipe: cluster the image
-- embeddings, keep a uniform share of every cluster (every 5th member, nearest
-- the centroid first), keep those in the top half by CLIPScore, and caption
-- each kept image with its alt text and a synthetic caption.
--   LAKECAP_CLIP_MODEL=... LAKECAP_CAPTION_MODEL=... \
--     lakecap run sql/tldr_reduce.sql -D LAKE=sample_lake/ -D OUT=out/tldr/
-- Departures: TL;DR learns a codebook with its own model and rewrites
-- captions with a generator; here k-means (16 clusters, sized for the sample
-- lake: use about √n) stands in for the codebook, and the new caption is
-- alt || '; ' || recaption(img) (concat_ws: a NULL alt leaves the caption).

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';

-- One CLIP pass over the images that decode.
CREATE TABLE emb AS
SELECT key, embed_image(img) AS v, clip_score(img, alt) AS score
FROM lake WHERE image_error(img) IS NULL;

CREATE TABLE clusters AS SELECT * FROM kmeans('emb', 'key', 'v', 16, 'seed=0');

CREATE TABLE sampled AS
SELECT key, "cluster" FROM
  (SELECT key, "cluster",
          row_number() OVER (PARTITION BY "cluster" ORDER BY distance, key) AS r
   FROM clusters)
WHERE (r - 1) % 5 = 0;

CREATE TABLE cut AS
SELECT approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY score) AS median FROM emb;

CREATE TABLE picked AS
SELECT s.key FROM sampled s JOIN emb e ON e.key = s.key, cut
WHERE e.score >= cut.median;

COPY (SELECT l.key, l.url, l.img, l.alt, concat_ws('; ', l.alt, recaption(l.img)) AS caption, l.crawl
      FROM lake l JOIN picked p ON p.key = l.key ORDER BY l.key)
TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

SELECT (SELECT count(*) FROM lake) AS rows,
       (SELECT count(*) FROM emb) AS embedded,
       (SELECT count(DISTINCT "cluster") FROM clusters) AS clusters,
       (SELECT count(*) FROM sampled) AS sampled,
       (SELECT count(*) FROM picked) AS kept;
