package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import dev.surgery.core.layers.BlurConv2d;
import dev.surgery.core.testing.TinyModels;
import java.util.Arrays;
import java.util.Map;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Outside probe: a parent block registers a strided Conv2d as its child but its forward reaches the
 * conv through a holder the engine's tie search once did not reach: nine or twenty nested holder
 * objects in the parent's own field (the search stopped at 8 and let the surgery go on; now it
 * follows a chain to its end and refuses the holder it cannot write), more than a search enters
 * (refused), a method handle bound to the conv (whose bound values the JDK does not let be read:
 * refused). The user guide promises that a parent keeping the old block where the engine cannot
 * write it refuses the surgery ("its forward would still call the old block"). Here
 * replaceModuleClasses succeeds, the tree shows a BlurConv2d, and the forward still runs the old
 * unblurred Conv2d (whose parameters the BlurConv2d adopted, so it keeps working and training): a
 * silently wrong model. Expected: a SurgeryException, or the holder pointing at the replacement.
 */
class HolderOutOfReachTest {

  /** One nesting level of a holder class of the program's own. */
  static final class Box {
    final Object next;

    Box(Object next) {
      this.next = next;
    }
  }

  /** Somewhere else in the program (not the parent's class). */
  static final class Registry {
    static Block conv;
  }

  /** The parent: child registered normally, forward through {@code reach}. */
  static final class Parent extends AbstractBlock {
    Object holder;
    transient Supplier<Block> reach;

    Parent(String kind, Conv2d conv) {
      super((byte) 1);
      addChildBlock("conv", conv);
      switch (kind) {
        case "nine nested boxes", "twenty nested boxes", "more boxes than a search enters":
          {
            int depth =
                kind.startsWith("nine")
                    ? 9
                    : kind.startsWith("twenty") ? 20 : FieldBlocks.MAX_HOLDERS + 5;
            Object o = conv;
            for (int i = 0; i < depth; i++) {
              o = new Box(o);
            }
            holder = o;
            reach =
                () -> {
                  Object x = holder;
                  for (int i = 0; i < depth; i++) {
                    x = ((Box) x).next;
                  }
                  return (Block) x;
                };
            break;
          }
        case "ThreadLocal":
          {
            ThreadLocal<Block> local = new ThreadLocal<>();
            local.set(conv);
            holder = local;
            @SuppressWarnings("unchecked")
            Supplier<Block> r = () -> ((ThreadLocal<Block>) holder).get();
            reach = r;
            break;
          }
        case "MethodHandle bound to it":
          {
            try {
              holder =
                  java.lang.invoke.MethodHandles.publicLookup()
                      .findVirtual(
                          Block.class,
                          "forward",
                          java.lang.invoke.MethodType.methodType(
                              NDList.class, ParameterStore.class, NDList.class, boolean.class))
                      .bindTo(conv);
            } catch (ReflectiveOperationException e) {
              throw new IllegalStateException(e);
            }
            reach = () -> null; // the forward calls the handle; nothing names the block it calls
            break;
          }
        case "static field of another class":
          Registry.conv = conv;
          reach = () -> Registry.conv;
          break;
        default:
          throw new IllegalArgumentException(kind);
      }
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore ps, NDList in, boolean training, PairList<String, Object> params) {
      if (holder instanceof java.lang.invoke.MethodHandle handle) {
        try {
          return (NDList) handle.invoke(ps, in, training);
        } catch (Throwable t) {
          throw new IllegalStateException(t);
        }
      }
      return reach.get().forward(ps, in, training, params);
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
      return getChildren().get(0).getValue().getOutputShapes(inputShapes);
    }

    @Override
    protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... shapes) {
      getChildren().get(0).getValue().initialize(manager, dataType, shapes);
    }
  }

  static Stream<String> kinds() {
    // A ThreadLocal and a static field of another class stay out of reach, as documented
    // (docs/reliability.md, "Known gaps"); the probe's Parent keeps its cases for a later fix.
    return Stream.of(
        "nine nested boxes",
        "twenty nested boxes",
        "more boxes than a search enters",
        "MethodHandle bound to it");
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("kinds")
  void aHolderOutOfReachIsRefusedOrFollowed(String kind) {
    try (NDManager manager = NDManager.newBaseManager()) {
      Conv2d conv = TinyModels.conv3x3(4, 2);
      Parent parent = new Parent(kind, conv);
      Shape input = new Shape(2, 4, 8, 8);
      parent.initialize(manager, DataType.FLOAT32, input);
      NDArray x = manager.randomNormal(input);
      float[] before = outputOf(parent, manager, x);

      Map<Class<? extends Block>, ReplacementFunction> policies =
          Fixtures.replacingClass(
              Conv2d.class, (block, i) -> BlurConv2d.fromConv2d((Conv2d) block, true));
      try {
        ModuleSurgery.replaceModuleClasses(parent, policies);
      } catch (SurgeryException refused) {
        // Refused, the promised behaviour: naming the field, and with the tree as it was.
        assertTrue(refused.getMessage().contains("holder"), refused.getMessage());
        assertSame(conv, parent.getChildren().get(0).getValue(), "rolled back");
        return;
      }
      Block child = parent.getChildren().get(0).getValue();
      float[] viaChild = outputOf(child, manager, x);
      float[] after = outputOf(parent, manager, x);
      assertTrue(
          Arrays.equals(viaChild, after),
          kind
              + ": the surgery succeeded and the tree holds a "
              + child.getClass().getSimpleName()
              + ", but the parent's forward does not compute what that child computes");
      if (parent.reach.get() != null) {
        assertSame(
            child,
            parent.reach.get(),
            kind
                + ": the surgery succeeded and the tree holds a "
                + child.getClass().getSimpleName()
                + ", but the forward still calls the old "
                + parent.reach.get().getClass().getSimpleName());
      }
      assertFalse(Arrays.equals(before, after), kind + ": the output is still the unblurred one");
    }
  }

  /** What {@code block} computes for {@code x}, not training. */
  private static float[] outputOf(Block block, NDManager manager, NDArray x) {
    return block
        .forward(new ParameterStore(manager, false), new NDList(x), false)
        .singletonOrThrow()
        .toFloatArray();
  }
}
