package dev.surgery.core.algorithms;

import dev.surgery.core.SurgeryException;

/**
 * An algorithm given {@code include} patterns found nothing to change under them: a pattern that
 * matches no block of the model, or included blocks of which none is something the algorithm
 * changes. Thrown instead of a silent no-op, since an include that selects nothing is usually a
 * mistake in the pattern. A caller that knows better may treat it as a run that changed nothing:
 * the surgery listener does so for a repeating entry ({@code every:}) once a run of it applied, on
 * the trainer or as the model's record says (its second BlurPool run finds the blurred layers it
 * made). The model is as it was: the algorithm throws it before it changes anything.
 */
public class NothingTargetedException extends SurgeryException {

  private static final long serialVersionUID = 1L;

  /**
   * Creates the exception.
   *
   * @param message what selected nothing, naming the algorithm and its patterns
   */
  public NothingTargetedException(String message) {
    super(null, message);
  }
}
