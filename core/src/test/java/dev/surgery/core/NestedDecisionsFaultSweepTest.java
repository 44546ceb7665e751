package dev.surgery.core;

import ai.djl.ndarray.types.DataType;
import dev.surgery.core.NestedDecisionsExactnessTest.Net;
import dev.surgery.core.NestedDecisionsExactnessTest.Scenario;
import dev.surgery.core.testing.OptimizerKind;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The nested-decision scenarios of {@link NestedDecisionsExactnessTest} under the project's k-th
 * chance sweep ({@link KthFaultRig}): a failure at every change of the trainer's store and
 * optimizer-state maps and at every fault point of the surgery (initialize, trainer add and remove,
 * the held-back draws), one at a time, until the surgery gets through. After each failure
 * everything reachable is as it was, object for object and bit for bit, and ten steps train as the
 * twin that never tried; the successful surgery, made on the twin too, trains alike.
 */
class NestedDecisionsFaultSweepTest {

  @ParameterizedTest(name = "{0}")
  @EnumSource(Scenario.class)
  void everyChanceToFailIsRolledBackExactly(Scenario scenario) throws Exception {
    Map<String, Net> nets = new HashMap<>();
    KthFaultRig.Sweep sweep =
        KthFaultRig.sweep(
            "nested-" + scenario,
            name -> {
              Net net = scenario.net();
              nets.put(name, net);
              return new KthFaultRig(
                  name,
                  List.of(net.root),
                  NestedDecisionsExactnessTest.INPUT,
                  DataType.FLOAT32,
                  OptimizerKind.ADAM);
            },
            KthFaultRig::armTrainerMaps,
            rig -> {},
            (rig, injector) ->
                ModuleSurgery.replaceModuleClasses(
                    rig.roots.get(0),
                    NestedDecisionsExactnessTest.asOnePolicy(scenario.policies(nets.get(rig.name))),
                    rig.trainers,
                    scenario.recurse(),
                    null,
                    injector::hit),
            true);
    sweep.reportAndAssertNoDefect();
  }
}
