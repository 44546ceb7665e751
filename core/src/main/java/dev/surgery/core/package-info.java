/**
 * Model surgery for DJL blocks: {@link dev.surgery.core.ModuleSurgery} counts and replaces blocks
 * in a model's tree and keeps the trainers that train it exact (parameter store, optimizer state,
 * update counts), all or nothing; block matching, block paths and the surgery options live here
 * too.
 */
package dev.surgery.core;
