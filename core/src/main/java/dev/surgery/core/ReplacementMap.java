package dev.surgery.core;

import ai.djl.nn.Block;
import java.util.AbstractMap;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The old block to new block map a surgery returns, in replacement order: a {@link LinkedHashMap}
 * built from the surgery's two lists at the first use that needs it (a lookup, an iteration, a
 * change). Until then it holds the lists only: hashing every old block again once the surgery is
 * over costs a cache miss per replaced block on a large tree, which a caller that reads only the
 * size does not need.
 */
final class ReplacementMap extends AbstractMap<Block, Block> {

  private List<Block> olds;
  private List<Block> news;
  private LinkedHashMap<Block, Block> map;

  /** Old blocks and what replaced them, same index, no old block twice. */
  ReplacementMap(List<Block> olds, List<Block> news) {
    this.olds = olds;
    this.news = news;
  }

  private Map<Block, Block> map() {
    if (map == null) {
      map = new LinkedHashMap<>(Math.max(16, olds.size() * 4 / 3 + 1));
      for (int i = 0; i < olds.size(); i++) {
        map.put(olds.get(i), news.get(i));
      }
      olds = null;
      news = null;
    }
    return map;
  }

  @Override
  public int size() {
    return map == null ? olds.size() : map.size();
  }

  @Override
  public boolean isEmpty() {
    return size() == 0;
  }

  @Override
  public Block get(Object key) {
    return map().get(key);
  }

  @Override
  public boolean containsKey(Object key) {
    return map().containsKey(key);
  }

  @Override
  public boolean containsValue(Object value) {
    return map().containsValue(value);
  }

  @Override
  public Block put(Block key, Block value) {
    return map().put(key, value);
  }

  @Override
  public Block remove(Object key) {
    return map().remove(key);
  }

  @Override
  public void putAll(Map<? extends Block, ? extends Block> m) {
    map().putAll(m);
  }

  @Override
  public void clear() {
    map().clear();
  }

  @Override
  public Set<Block> keySet() {
    return map().keySet();
  }

  @Override
  public Collection<Block> values() {
    return map().values();
  }

  @Override
  public Set<Map.Entry<Block, Block>> entrySet() {
    return map().entrySet();
  }
}
