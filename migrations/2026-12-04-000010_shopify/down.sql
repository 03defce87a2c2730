DROP TABLE commerce_product_daily;
DROP TABLE shopify_data_requests;
DROP TABLE shopify_objects;
