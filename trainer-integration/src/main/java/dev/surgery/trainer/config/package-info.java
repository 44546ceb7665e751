/**
 * The YAML surgery config: parsing with SnakeYAML Engine (node positions kept), validation against
 * the registered algorithms' hyperparameter declarations, and one {@link
 * dev.surgery.trainer.config.SurgeryConfigException} listing every problem as {@code
 * file:line:column: message}.
 */
package dev.surgery.trainer.config;
