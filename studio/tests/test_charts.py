from studio.charts import loss_chart, nice_ticks


def test_ticks_are_round_numbers_covering_the_range():
    assert nice_ticks(0, 5.02) == [0, 2, 4, 6]
    assert nice_ticks(0, 0.9) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0, 0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_a_running_job_is_drawn_against_the_whole_planned_run():
    # Step 2 of 8, at epoch 0.5 of 2: the x axis already spans both epochs.
    history = [{"step": s, "total_steps": 8, "epoch": s / 4, "loss": 3.0 - s} for s in (1, 2)]
    chart = loss_chart(history, [])
    assert [t.label for t in chart.x_ticks] == ["0", "1", "2"]
    xs = [float(p.split(",")[0]) for p in chart.training.split()]
    plot_width = chart.right - chart.left
    assert xs == [chart.left + 0.125 * plot_width, chart.left + 0.25 * plot_width]


def test_every_point_lies_inside_the_plot_area():
    history = [{"step": s, "total_steps": 10, "epoch": s / 5, "loss": 5.0 / s} for s in range(1, 11)]
    validation = [{"epoch": 1, "validation_loss": 1.5}, {"epoch": 2, "validation_loss": 0.7}]
    chart = loss_chart(history, validation)
    points = [tuple(map(float, p.split(","))) for p in (chart.training + " " + chart.validation).split()]
    assert all(chart.left <= x <= chart.right and chart.top <= y <= chart.bottom for x, y in points)
    assert len(chart.validation_dots) == 2
    assert chart.y_ticks[0].label == "0" and chart.y_ticks[-1].label == "5"


def test_no_history_no_chart():
    assert loss_chart([], []) is None


def test_a_bar_chart_has_one_bar_per_slot_above_zero_inside_the_plot():
    from studio.charts import bar_chart

    chart = bar_chart([f"d{i}" for i in range(30)], [0] * 27 + [1500, 0, 3000])
    assert len(chart.bars) == 2
    assert all(chart.left <= b.x and b.x + b.width <= chart.right and chart.top <= b.y
               and b.y + b.height <= chart.bottom + 0.1 for b in chart.bars)
    assert chart.bars[1].height == 2 * chart.bars[0].height
    assert [t.label for t in chart.y_ticks][-1] == "3k" and len(chart.x_ticks) <= 8


def test_no_values_no_bar_chart():
    from studio.charts import bar_chart

    assert bar_chart(["a", "b"], [0, 0]) is None and bar_chart([], []) is None
