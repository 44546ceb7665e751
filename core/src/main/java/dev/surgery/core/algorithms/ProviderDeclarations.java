package dev.surgery.core.algorithms;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The {@link AlgorithmProvider} classes that service files declare, gathered place by place (a jar
 * or a class folder) to find one class declared in two places: a class loader defines a class name
 * once, so the second place's version (two copies or two versions of one plugin jar) would be
 * ignored without a word. The library checks its class loader's files with it, the agent the jars
 * of its {@code extensions} argument; each phrases its own advice.
 */
public final class ProviderDeclarations {

  /** The service file, relative to a jar's or folder's root, that lists algorithm providers. */
  public static final String SERVICE_FILE =
      "META-INF/services/" + AlgorithmProvider.class.getName();

  /**
   * A provider class declared in two places.
   *
   * @param provider the class name
   * @param firstPlace where it was declared first
   * @param secondPlace where it was declared again
   */
  public record Conflict(String provider, String firstPlace, String secondPlace) {

    /**
     * Says what is wrong, for example {@code the provider class a.B is in both x.jar and y.jar:
     * <advice>}.
     *
     * @param what what the class is called in the message
     * @param advice what happens and what to do
     * @return the message
     */
    public String message(String what, String advice) {
      return what
          + " "
          + provider
          + " is in both "
          + firstPlace
          + " and "
          + secondPlace
          + ": "
          + advice;
    }
  }

  private final Map<String, String> placeOfProvider = new HashMap<>();

  /** An empty gathering. */
  public ProviderDeclarations() {}

  /**
   * The class names a service file's text declares, in order: one per line, {@code #} comments and
   * blank lines dropped, as {@link java.util.ServiceLoader} reads them.
   *
   * @param serviceFileText the file's text
   * @return the class names
   */
  public static List<String> classNames(String serviceFileText) {
    List<String> names = new ArrayList<>();
    for (String line : serviceFileText.split("\\R")) {
      int comment = line.indexOf('#');
      String name = (comment >= 0 ? line.substring(0, comment) : line).trim();
      if (!name.isEmpty()) {
        names.add(name);
      }
    }
    return names;
  }

  /**
   * Adds one place's service file and tells whether it declares a provider that another place
   * declared already. The same place twice (one jar on a class path twice, as the caller spells it
   * canonically) is no conflict.
   *
   * @param place where the file was found, spelled canonically by the caller (a real path)
   * @param serviceFileText the file's text
   * @return the first conflict this file adds, or empty
   */
  public Optional<Conflict> add(String place, String serviceFileText) {
    for (String provider : classNames(serviceFileText)) {
      String first = placeOfProvider.putIfAbsent(provider, place);
      if (first != null && !first.equals(place)) {
        return Optional.of(new Conflict(provider, first, place));
      }
    }
    return Optional.empty();
  }
}
