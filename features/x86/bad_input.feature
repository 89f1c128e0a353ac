@x86
Feature: A bad model is refused with one clear line, and nothing half-built is left

  Scenario Outline: compiling a <kind> model file
    Given a model file that is <kind>
    When I run tinymlaas compile on it for "x86-tflm"
    Then the command exits with code 2
    And stderr is one line that says "<reason>"
    And no module directory was written

    Examples:
      | kind        | reason                                   |
      | empty       | model file is empty                      |
      | not TFLite  | lacks the 'TFL3' flatbuffer identifier   |
      | corrupt     | corrupt TFLite model                     |

  Scenario: compiling for a board that does not exist
    Given the hello_world int8 model from the zoo
    When I run tinymlaas compile on it for "no-such-board"
    Then the command exits with code 3
    And stderr is one line that says "no target board 'no-such-board'"
