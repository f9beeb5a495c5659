-- Dense VLM recaptioning beside the alt text: the descriptive synthetic
-- captions (DSC+) of Apple's "Revisit Large-Scale Image-Caption Data in
-- Pre-training Multimodal Foundation Models" (Lai et al., 2024), where an
-- instruction VLM is asked for a detailed description and the alt text is
-- kept beside it for the mixing recipes (sql/revisit_mix.sql).
--   LAKECAP_VLM_MODEL=Qwen/Qwen2-VL-2B-Instruct lakecap run sql/recaption_vlm.sql \
--     -D LAKE=sample_lake/ -D OUT=out/dense/ \
--     -D "PROMPT=Describe this image in detail: the objects, their attributes and the scene."
-- PROMPT is the instruction (no single quotes in it). Replies are cached on
-- disk by (model, options, prompt, image), so a rerun only captions new images.

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';

CREATE TABLE dense AS
SELECT key, alt, vlm(img, '${PROMPT}', 'max_tokens=160; repetition_penalty=1.05') AS caption, crawl
FROM lake WHERE image_error(img) IS NULL;

COPY (SELECT * FROM dense ORDER BY key) TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

SELECT count(*) AS images, count(caption) AS captioned,
       round(avg(length(caption)), 1) AS mean_caption_chars,
       round(avg(length(alt)), 1) AS mean_alt_chars
FROM dense;
