package dev.surgery.trainer;

import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import dev.surgery.trainer.SurgeryCheckpoint.Header;
import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads what DJL's {@code Model.save} writes before the parameters, as DJL's {@code BaseModel}
 * reads it, refusing lengths no real file has (a damaged file must give an {@code IOException}, not
 * an {@code OutOfMemoryError}).
 */
final class ParamsFileHeader {

  /** The model version DJL 0.36 writes after the {@code DJL@} magic. */
  private static final int DJL_MODEL_VERSION = 1;

  private ParamsFileHeader() {}

  /**
   * Reads a shape as DJL's {@code Shape.decode} does, refusing lengths no shape has: a damaged file
   * would otherwise have it allocate an array of billions (an {@code OutOfMemoryError}).
   */
  private static Shape shape(DataInputStream dis, Path paramsFile) throws IOException {
    int rank = dis.readInt();
    if (rank < 0 || rank > MAX_RANK) {
      throw new IOException(
          paramsFile + ": malformed header (an input shape of rank " + rank + ")");
    }
    long[] dimensions = new long[rank];
    for (int i = 0; i < rank; i++) {
      dimensions[i] = dis.readLong();
    }
    int layoutLength = dis.readInt();
    if (layoutLength < 0 || layoutLength > MAX_RANK) {
      throw new IOException(
          paramsFile + ": malformed header (an input layout of " + layoutLength + " characters)");
    }
    char[] layout = new char[layoutLength];
    for (int i = 0; i < layoutLength; i++) {
      layout[i] = dis.readChar();
    }
    try {
      return new Shape(dimensions, new String(layout));
    } catch (IllegalArgumentException e) {
      throw new IOException(paramsFile + ": malformed header (" + e.getMessage() + ")", e);
    }
  }

  /** More dimensions than any input has: PyTorch itself allows 64. */
  private static final int MAX_RANK = 64;

  /** See {@link SurgeryCheckpoint#readHeader}. */
  static Header read(Path paramsFile) throws IOException {
    try (DataInputStream dis =
        new DataInputStream(new BufferedInputStream(Files.newInputStream(paramsFile)))) {
      return read(dis, paramsFile);
    }
  }

  /**
   * The input shape a root block that is a DJL {@code Linear} was initialized with, read from the
   * layer's own metadata, which follows the header: the header holds what {@code Linear} describes
   * as its input, the shape without its last dimension, and the metadata holds that dimension (its
   * input features). Null when the file holds no such metadata (a layer of another DJL version).
   */
  static Shape linearRootInput(Path paramsFile) throws IOException {
    return readRootMetadata(
        paramsFile,
        (dis, header) -> {
          if (dis.readUnsignedByte() != LINEAR_VERSION) {
            return null;
          }
          dis.readLong(); // units
          long inputFeatures = dis.readLong();
          Shape leading = shape(dis, paramsFile);
          // The metadata must agree with the header (both written from one layer), else unread.
          boolean agrees = header.inputShapes().equals(List.of(leading)) && inputFeatures > 0;
          return agrees ? leading.add(inputFeatures) : null;
        });
  }

  /**
   * The input shapes the root block was initialized with, as DJL's {@code
   * AbstractBaseBlock.saveInputShapes} writes them at the start of the root's metadata (its
   * version, the count, the shapes); the caller knows the root's class writes them there. Null when
   * the file holds no such count.
   */
  static List<Shape> rootInputShapes(Path paramsFile) throws IOException {
    return readRootMetadata(
        paramsFile,
        (dis, header) -> {
          dis.readUnsignedByte(); // the root's version
          int count = dis.readInt();
          if (count < 1 || count > 1 << 16) {
            return null;
          }
          List<Shape> shapes = new ArrayList<>();
          for (int i = 0; i < count; i++) {
            shapes.add(shape(dis, paramsFile));
          }
          return shapes;
        });
  }

  /** Reads the start of the root block's metadata, which follows the header. */
  private interface RootMetadata<T> {
    T read(DataInputStream dis, Header header) throws IOException;
  }

  /** What {@code reader} makes of the root's metadata; null for a file that is not DJL's. */
  private static <T> T readRootMetadata(Path paramsFile, RootMetadata<T> reader)
      throws IOException {
    try (DataInputStream dis =
        new DataInputStream(new BufferedInputStream(Files.newInputStream(paramsFile)))) {
      Header header = read(dis, paramsFile);
      return header == null ? null : reader.read(dis, header);
    } catch (EOFException e) {
      throw new IOException(paramsFile + ": truncated DJL parameter file", e);
    }
  }

  /** The version DJL 0.36's {@code Linear} writes before its metadata. */
  private static final int LINEAR_VERSION = 4;

  private static Header read(DataInputStream dis, Path paramsFile) throws IOException {
    try {
      byte[] magic = new byte[4];
      try {
        dis.readFully(magic);
      } catch (EOFException e) {
        return null;
      }
      if (!"DJL@".equals(new String(magic, StandardCharsets.US_ASCII))) {
        return null;
      }
      int version = dis.readInt();
      if (version != DJL_MODEL_VERSION) {
        throw new IOException(paramsFile + ": unsupported DJL model version " + version);
      }
      String modelName = dis.readUTF();
      DataType dataType;
      try {
        dataType = DataType.valueOf(dis.readUTF());
      } catch (IllegalArgumentException e) {
        throw new IOException(paramsFile + ": unknown data type in the header", e);
      }
      int inputs = dis.readInt();
      if (inputs < 0 || inputs > 1 << 16) {
        throw new IOException(paramsFile + ": malformed header (" + inputs + " inputs)");
      }
      List<String> names = new ArrayList<>();
      List<Shape> shapes = new ArrayList<>();
      for (int i = 0; i < inputs; i++) {
        names.add(dis.readUTF());
        shapes.add(shape(dis, paramsFile));
      }
      int count = dis.readInt();
      if (count < 0 || count > 1 << 16) {
        throw new IOException(paramsFile + ": malformed header (" + count + " properties)");
      }
      Map<String, String> properties = new LinkedHashMap<>();
      for (int i = 0; i < count; i++) {
        properties.put(dis.readUTF(), dis.readUTF());
      }
      return new Header(modelName, dataType, names, shapes, properties);
    } catch (EOFException e) {
      throw new IOException(paramsFile + ": truncated DJL parameter file header", e);
    }
  }
}
