-- Visual Fact Checker (Ge et al., "Visual Fact Checker: Enabling
-- High-Fidelity Detailed Caption Generation", CVPR 2024) as SQL:
--   1. proposals: captions from two captioners (BLIP through recaption, a VLM
--      through vlm; lakecap.caption_model and lakecap.vlm.model);
--   2. an LLM lists the objects each proposal claims (lakecap.llm.model);
--   3. the VLM verifies each object with a yes/no question;
--   4. the LLM writes the final caption from the verified objects only.
-- Where it departs from the paper: VFC verifies objects with an
-- open-vocabulary detector (Grounding DINO) and only attributes with VQA;
-- here the VLM's yes/no answer verifies objects too (no detector in lakecap),
-- and the final step sees the drafts beside the facts.
--   lakecap run sql/vfc.sql -D LAKE=sample_lake/ -D OUT=out/vfc/

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';

CREATE TABLE images AS
SELECT key, img, alt, crawl FROM lake WHERE image_error(img) IS NULL;

-- 1. Two proposals per image.
CREATE TABLE proposals AS
SELECT key, 'blip' AS source, recaption(img, 'max_tokens=30; repetition_penalty=1.2') AS caption
FROM images
UNION ALL
SELECT key, 'vlm' AS source, vlm(img, 'Describe this image in one or two sentences.', 'max_tokens=60') AS caption
FROM images;

-- 2. The objects each proposal claims, one row per (image, object).
CREATE TABLE claims AS
SELECT DISTINCT key, lower(trim(object)) AS object
FROM (SELECT key, unnest(string_to_array(llm(
        'List the physical objects that this caption mentions, as nouns separated by commas, and nothing else.
Caption: {1}', caption), ',')) AS object
      FROM proposals WHERE caption IS NOT NULL)
WHERE trim(object) <> '';

-- 3. The VLM checks each claimed object against the image.
CREATE TABLE checked AS
SELECT c.key, c.object,
       vlm(i.img, 'Is there ' || c.object || ' in this image? Answer yes or no.', 'max_tokens=3') AS answer
FROM claims c JOIN images i ON i.key = c.key;

CREATE TABLE facts AS
SELECT key, string_agg(object, ', ' ORDER BY object) AS verified
FROM checked WHERE lower(trim(answer)) LIKE 'yes%' GROUP BY key;

-- 4. The final caption, from verified objects only.
CREATE TABLE vfc AS
SELECT i.key, i.alt, b.caption AS blip_caption, v.caption AS vlm_caption, f.verified,
       llm('Write one accurate caption for an image. Mention only these verified objects: {1}.
Draft captions, which may contain errors: {2} / {3}',
           coalesce(f.verified, 'none'), coalesce(b.caption, ''), coalesce(v.caption, '')) AS caption,
       i.crawl
FROM images i
LEFT JOIN facts f ON f.key = i.key
LEFT JOIN proposals b ON b.key = i.key AND b.source = 'blip'
LEFT JOIN proposals v ON v.key = i.key AND v.source = 'vlm';

COPY (SELECT * FROM vfc ORDER BY key) TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

SELECT (SELECT count(*) FROM images) AS images,
       (SELECT count(caption) FROM proposals) AS proposals,
       (SELECT count(*) FROM claims) AS objects_claimed,
       (SELECT count(*) FROM facts) AS images_with_facts,
       (SELECT count(caption) FROM vfc) AS captioned;
