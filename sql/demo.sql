-- lakecap demo: curate a lake with the functions that need no model weights.
--   lakecap run sql/demo.sql -D LAKE=sample_lake/ -D OUT=out/curated/
-- (`lakecap demo` runs this file on the embedded sample lake.)

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';

-- One pass over the images: perceptual hash, content hash, header info and
-- alt-text quality, materialised so no image is decoded twice. phash is NULL
-- exactly when an image does not decode, so only those rows are diagnosed.
CREATE TABLE scored AS
SELECT *, CASE WHEN ph IS NULL THEN image_error(img) END AS img_error
FROM (SELECT key, url, alt, img, crawl,
             phash(img)                AS ph,
             sha256(img)               AS content_hash,
             image_info(img)           AS info,
             alt_quality(alt)['score'] AS alt_score
      FROM lake);

-- Perceptual near-duplicates among the usable images.
CREATE TABLE usable AS SELECT key, ph FROM scored WHERE img_error IS NULL;
CREATE TABLE near AS SELECT * FROM near_duplicates('usable', 'key', 'ph', 8);

-- One reason per dropped row, checked in order; NULL means kept.
CREATE TABLE decided AS
SELECT s.*,
  CASE
    WHEN s.img_error IS NOT NULL THEN 'bad image: ' || CASE
        WHEN s.img_error LIKE '%exceeds lakecap.max_pixels%' THEN 'too many pixels'
        WHEN s.img_error LIKE 'corrupt%' THEN 'corrupt'
        WHEN s.img_error LIKE 'truncated%' THEN 'truncated'
        ELSE s.img_error END
    WHEN row_number() OVER (PARTITION BY s.content_hash ORDER BY s.key) > 1 THEN 'exact duplicate'
    WHEN n.key IS NOT NULL AND n.key <> n.representative THEN 'near duplicate'
    WHEN s.info['width'] < 64 OR s.info['height'] < 64 THEN 'image under 64 px'
    WHEN coalesce(s.alt_score, 0) < 0.1 THEN 'unusable alt text (no captioner to replace it)'
  END AS dropped_because
FROM scored s LEFT JOIN near n ON s.key = n.key;

COPY (SELECT key, url, alt AS caption, img, ph AS phash, alt_score, crawl
      FROM decided WHERE dropped_because IS NULL ORDER BY key)
TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

-- Summary: rows in, dropped by reason, rows out.
SELECT coalesce(dropped_because, 'kept') AS outcome, count(*) AS rows
FROM decided GROUP BY 1 ORDER BY rows DESC, outcome;
