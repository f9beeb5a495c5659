-- Recaptioning: a short synthetic caption (BLIP) beside every alt text, the
-- first step of CapsFusion, VeCLIP and Apple's "Revisit" recipes.
--   LAKECAP_CAPTION_MODEL=Salesforce/blip-image-captioning-base \
--     lakecap run sql/recaption.sql -D LAKE=sample_lake/ -D OUT=out/recaptioned/
-- The output (key, alt, caption, crawl) is the CAPTIONS input of the fusion
-- recipes. Captions are cached on disk, so a rerun (or a refresh with new
-- shards) only captions new images; SET lakecap.cache = off to recompute.

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';

CREATE TABLE recaptioned AS
SELECT key, alt, recaption(img, 'prompt=a picture of; max_tokens=30; repetition_penalty=1.2') AS caption, crawl
FROM lake WHERE image_error(img) IS NULL;

COPY (SELECT * FROM recaptioned ORDER BY key) TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

SELECT count(*) AS images, count(caption) AS captioned,
       round(avg(length(caption)), 1) AS mean_caption_chars,
       round(avg(length(alt)), 1) AS mean_alt_chars
FROM recaptioned;
