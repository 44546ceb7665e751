/**
 * The datasets the sample jobs train on: generated images that need no download, DJL's MNIST,
 * Fashion-MNIST and CIFAR-10, and local image folders.
 */
package dev.surgery.samples.data;
