/**
 * The report of a training run: a plain {@code TrainingListener} that records loss, accuracy and
 * block-tree changes per epoch, and the writer of the HTML, PNG and JSON report.
 */
package dev.surgery.samples.report;
