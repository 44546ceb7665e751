package dev.surgery.core.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Field;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Slots of the same field are equal (sets and maps of them dedupe), and describe their field. */
class FieldSlotTest {

  @SuppressWarnings("unused")
  static final class Fields {
    static Object shared;
    List<String> names;
    Map<String, List<Integer>> groups;
  }

  private static List<FieldSlot> slots(String... names) throws NoSuchFieldException {
    Field[] fields = new Field[names.length];
    for (int i = 0; i < names.length; i++) {
      fields[i] = Fields.class.getDeclaredField(names[i]);
      fields[i].setAccessible(true);
    }
    return FieldSlot.all(List.of(fields));
  }

  @Test
  void slotsOfOneFieldAreEqualAndDescribeIt() throws NoSuchFieldException {
    List<FieldSlot> first = slots("shared", "names", "groups");
    List<FieldSlot> again = slots("shared", "names", "groups");
    assertEquals(3, first.size());
    assertEquals(first, again);
    assertEquals(first.get(1).hashCode(), again.get(1).hashCode());
    assertNotEquals(first.get(1), first.get(2));
    assertNotEquals(first.get(1), "names");
    assertEquals(Fields.class.getName() + ".names", first.get(1).toString());
    assertTrue(first.get(0).isStatic());
    assertFalse(first.get(1).isStatic());
    assertEquals(String.class, first.get(1).declaredTypeArgument(0));
    assertNull(first.get(1).declaredTypeArgument(1), "a list declares one argument");
    assertEquals(List.class, first.get(2).declaredTypeArgument(1), "raw class of List<Integer>");
    assertNull(first.get(0).declaredTypeArgument(0), "an Object field declares none");
  }
}
