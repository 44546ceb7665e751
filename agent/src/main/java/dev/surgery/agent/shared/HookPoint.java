package dev.surgery.agent.shared;

/**
 * The places in DJL where the woven advice reports to the agent, beyond the trainer's construction
 * and initialization and a model's parameter loading (which have their own {@link DjlHooks}
 * methods). The DJL side turns them into training events; see {@code
 * dev.surgery.agent.hookloader.AgentEvents} for which event each one fires.
 */
public enum HookPoint {
  /** Entry of {@code Trainer.forward(NDList)} or {@code Trainer.forward(NDList, NDList)}. */
  FORWARD_ENTER,
  /** Normal return of {@code Trainer.forward}. */
  FORWARD_EXIT,
  /** Normal return of the engine's {@code GradientCollector.backward(NDArray)}. */
  BACKWARD_EXIT,
  /** Normal return of {@code Trainer.step()}. */
  STEP_EXIT,
  /** Entry of {@code Trainer.evaluate(NDList)}. */
  EVALUATE_ENTER,
  /** Entry of {@code EasyTrain.evaluateDataset(Trainer, Dataset)} with a dataset. */
  EVALUATE_DATASET_ENTER,
  /** Normal return of {@code EasyTrain.evaluateDataset(Trainer, Dataset)} with a dataset. */
  EVALUATE_DATASET_EXIT,
  /** Normal return of {@code EasyTrain.fit(Trainer, int, Dataset, Dataset)}. */
  FIT_EXIT,
  /** Normal return of {@code BaseModel.readParameters(Path, Map)}; the target is the model. */
  PARAMETERS_LOADED,
  /** Entry of {@code BaseModel.save(Path, String)}; the target is the model. */
  MODEL_SAVING
}
