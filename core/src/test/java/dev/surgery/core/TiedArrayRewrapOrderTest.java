package dev.surgery.core;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import dev.surgery.core.OptimizerMoveRig.Batches;
import dev.surgery.core.OptimizerMoveRig.Kind;
import dev.surgery.core.SharedArrayMoveTest.TiedModel;
import dev.surgery.core.SharedArrayMoveTest.TiedReader;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A trainable layer's weight and a frozen Parameter tied to it (one array) are both rewrapped, new
 * Parameters around the very arrays, trainable where the old one trained and frozen where it was
 * frozen: training goes on exactly as without the surgery, whatever the order the removed
 * parameters are listed in, each list on its own. With the frozen tie listed first, {@code
 * updateParamsInOptimizer} handed the array's entry to the new trainable weight from the frozen
 * tie: it restarted fresh (Adam's moments and Sgd's momentum lost) and the old weight's state was
 * dropped.
 */
class TiedArrayRewrapOrderTest {

  // The tie's place in the removed and in the added list, independently: where both lists name
  // it at one place, taking the first candidate would pair the parameters by luck.
  static Stream<Arguments> kindsAndOrders() {
    return Stream.of(Kind.values())
        .flatMap(
            k ->
                Stream.of(
                    Arguments.of(k, true, true),
                    Arguments.of(k, false, false),
                    Arguments.of(k, true, false),
                    Arguments.of(k, false, true)));
  }

  @ParameterizedTest(name = "{0}, frozen tie listed first: removed {1}, added {2}")
  @MethodSource("kindsAndOrders")
  void aRewrappedTieGoesOnAsTheTwinWhateverTheOrderOfTheLists(
      Kind kind, boolean tieFirst, boolean newTieFirst) {
    try (Batches data = new Batches(45, 9);
        TiedModel subject = new TiedModel(kind, 11);
        TiedModel twin = new TiedModel(kind, 11)) {
      for (int k = 0; k < 25; k++) {
        if (k == 6) {
          Linear layer = (Linear) subject.net.getChildren().get(0).getValue();
          NDArray w = subject.weight0().getArray();
          Linear rewrapped = OptimizerMoveEdgesTest.rewrap(layer);
          TiedReader reader = subject.reader();
          TiedReader rewrappedReader = new TiedReader(SharedArrayMoveTest.frozenAround(w));
          List<Parameter> before = new ArrayList<>(OptimizerMoveRig.params(layer));
          List<Parameter> after = new ArrayList<>(OptimizerMoveRig.params(rewrapped));
          before.add(tieFirst ? 0 : 2, reader.tied);
          after.add(newTieFirst ? 0 : 2, rewrappedReader.tied);
          ModuleSurgery.updateParamsInOptimizer(before, after, List.of(subject.trainer));
          Map<Block, Block> swap = Map.of(layer, rewrapped, reader, rewrappedReader);
          ModuleSurgery.replaceModuleClasses(
              subject.net, Map.of(Block.class, (b, i) -> swap.get(b)), null, false, null);
        }
        subject.step(data.get(k));
        twin.step(data.get(k));
        SharedArrayMoveTest.assertSame(subject, twin, "step " + k);
      }
    }
  }
}
